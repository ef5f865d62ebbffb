"""Small widgets and helpers shared by several features: cards and badges, the error panel, screen fitting."""
