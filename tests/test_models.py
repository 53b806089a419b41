"""Models take their sizes from the data; configs only set the architecture."""

import pytest
import torch

from trainer.errors import UserError
from trainer.models import CNN, MLP, Linear, summarize


def test_models_map_inputs_to_the_requested_outputs():
    assert Linear((5,), 3)(torch.zeros(4, 5)).shape == (4, 3)
    mlp = MLP((2,), 1, hidden_sizes=[8, 8], dropout=0.1, batch_norm=True, activation="gelu")
    assert mlp(torch.zeros(4, 2)).shape == (4, 1)
    kinds = [type(m).__name__ for m in mlp.layers]
    assert (
        kinds.count("BatchNorm1d") == 2 and kinds.count("Dropout") == 2 and kinds.count("GELU") == 2
    )
    cnn = CNN((1, 8, 8), 10)
    assert cnn(torch.zeros(3, 64)).shape == (3, 10)  # flat pixels are reshaped to images


def test_cnn_on_flat_data_and_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="model=cnn needs image data"):
        CNN((2,), 1)
    with pytest.raises(UserError, match="model.activation"):
        MLP((2,), 1, activation="relux")
    with pytest.raises(UserError, match="model.dropout"):
        MLP((2,), 1, dropout=1.5)


def test_summary_counts_parameters():
    model = MLP((2,), 1, hidden_sizes=[4])
    total, trainable, table = summarize(model)
    assert total == trainable == (2 * 4 + 4) + (4 * 1 + 1)
    assert "layers.0" in table and f"**{total:,}**" in table
