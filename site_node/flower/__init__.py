"""The site's Flower ClientApp (``fedsurv.site_node.flower.client_app:app``) and its round guard."""
