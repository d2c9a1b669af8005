"""The basis form's shapes: P and A have rank min(k*k*c_in, filters*E)."""

from keras_lc import LCConv2D, zoo


def test_basis_rank_is_min_of_fan_in_and_spatial_filters():
    model = zoo.resnet_lc(depth=8, width=8, expansion=8, implementation="basis", seed=0,
                          input_shape=(32, 32, 3))
    layers = [layer for layer in model.layers if isinstance(layer, LCConv2D)]
    cut = 0
    for layer in layers:
        fan_in, m = layer.basis.shape[0], layer.spatial_filters
        assert layer.basis.shape[1] == layer.basis_coefficients.shape[0] == min(fan_in, m)
        cut += fan_in < m
    # the stem (27 < 64) and the first conv of stages 2 and 3 (72 < 128, 144 < 256)
    assert cut == 3
