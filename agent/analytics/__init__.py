"""Post-call analytics (docs/analytics.md): what every finished call yields, its cost, and daily figures."""
