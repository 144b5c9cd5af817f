"""The site's Flower ClientApp (``site_node.flower.client_app:app``) and its round guard."""
