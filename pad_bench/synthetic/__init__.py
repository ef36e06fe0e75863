"""The synthetic world: procedural person domains (`domains.py`) with attribute records and captions
(`attributes.py`), the image-caption pretraining corpus (`corpus.py`), the tiny models pretrained on it
(`pretrain.py`), stand-in trees of the real datasets (`rehearsal.py`), and the asset step that makes
what a synthetic run needs before it starts (`assets.py`). The data path takes only the domains'
names from here (data/datasets/synthetic.py)."""
