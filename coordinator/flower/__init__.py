"""The coordinator's Flower ServerApp (``fedsurv.coordinator.flower.server_app:app``) and its
helpers."""
