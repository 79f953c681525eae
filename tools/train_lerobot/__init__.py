"""``lerobot-wds train-lerobot``: lerobot's own training pipeline fed by a converted root through the fast path.

Modules: :mod:`cli` (the subcommand), :mod:`pipeline` (lerobot's ``train`` with our dataset and loader; imports
lerobot), :mod:`loader` (this rank's batches for lerobot's loop; needs only torch).
"""
