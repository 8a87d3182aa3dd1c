"""What the Hugging Face fixture generators share: the reference file the parity tests read."""
import json
import os

import torch
import transformers


def write_reference(out, name, input_ids, logits):
    """OUT/<name>.json: the token batch and the logits transformers computed, with the versions that computed them."""
    with open(os.path.join(out, f'{name}.json'), 'w') as f:
        json.dump({'input_ids': input_ids.tolist(), 'logits': logits.tolist(), 'transformers': transformers.__version__,
                   'torch': torch.__version__}, f)
    print(name, 'logits', tuple(logits.shape), 'transformers', transformers.__version__)
