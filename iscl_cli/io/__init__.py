"""Image input and output: TIFF stacks and DICOM series as ``Volume`` objects."""

from iscl_cli.io.discover import open_volumes

__all__ = ["open_volumes"]
