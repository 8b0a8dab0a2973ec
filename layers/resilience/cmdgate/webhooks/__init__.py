"""Inbound webhooks: signed deliveries from GitHub, Stripe and Standard Webhooks senders start configured runs.

`config` (the sources, read into Settings), `signatures` (the three signature schemes), `receiver`
(one delivery, end to end), `deliveries` (records of deliveries that started nothing), `errors`.
The package itself imports nothing, so Settings can read the sources without the rest of the layer.
"""
