"""Image sets: manifests, pixel readers, the array store and validation."""

from .core import (REQUIRED_COLUMNS, ArrayStoreWriter, GalrateDataWarning, ImageSet,
                   ImageSetError, file_sha256, read_manifest, validate_manifest,
                   write_imageset, write_manifest)

__all__ = ["REQUIRED_COLUMNS", "ArrayStoreWriter", "GalrateDataWarning", "ImageSet",
           "ImageSetError", "file_sha256", "read_manifest", "validate_manifest",
           "write_imageset", "write_manifest"]
