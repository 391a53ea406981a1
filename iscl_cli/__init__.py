"""iscl: unpaired denoising of TIFF stacks and DICOM series with ISCL."""

__version__ = "0.1.0"
