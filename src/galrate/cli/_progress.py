"""tqdm progress bars for the library's ``progress(done, total, what)`` callbacks."""

from __future__ import annotations

from tqdm.auto import tqdm


class Bars:
    """One tqdm bar per ``what``; call with absolute ``done`` counts."""

    def __init__(self, disable: bool = False):
        self._bars: dict[str, tqdm] = {}
        self.disable = disable

    def __call__(self, done: int, total: int, what: str) -> None:
        bar = self._bars.get(what)
        if bar is None:
            bar = self._bars[what] = tqdm(total=total, desc=what,
                                          dynamic_ncols=True, disable=self.disable)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
