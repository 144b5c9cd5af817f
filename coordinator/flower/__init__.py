"""The coordinator's Flower ServerApp (``coordinator.flower.server_app:app``) and its helpers."""
