"""Data files shipped with Parley (models.toml, icons, style sheets)."""
