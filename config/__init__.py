"""The regency as data. The default (Kabupaten Trenggalek) ships inside the package."""
from pathlib import Path

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent / "trenggalek"
