"""keras.applications' arguments of every zoo builder: their one spelling, checks, input, head.

- `application_builder(classes)`: the decorator that gives a family builder
  keras.applications' arguments (`include_top, weights, input_tensor,
  input_shape, pooling, classes, classifier_activation, name`, spelled once,
  in `APPLICATION_ARGUMENTS`), in its signature and as one `application`
  dict for `Application`.
- `Application`: validates those arguments with keras.applications' error
  messages, makes the input and its preprocessing, and finishes the model
  with the one classifier head and the one weights-loading hook
  (`keras_lc.zoo.pretrained`).

`include_preprocessing` (keras.applications' ConvNeXt/EfficientNetV2
argument): `None` (the default) starts the model with the normalization of
its weights when `weights` names published weights, so it takes raw RGB in
[0, 255], and with none otherwise (random weights: the inputs are whatever
you train on); `True` asks for the published weights' normalization (an
error without them); a dataset name (e.g. `"cifar10"`) asks for that
dataset's; `False` for none (normalized inputs, as training feeds them).
"""

import dataclasses
import functools
import inspect

import keras

from keras_lc.initializers import STREAM_BIAS, TorchUniform, resolve_seed
from keras_lc.validation import check_bool, check_choice, positive_int
from keras_lc.zoo.pretrained import check_weights, load_weights, preprocessing_for, preprocessing_layer

#: keras.applications' arguments, in their order, with their defaults
#: (`classes`: the family's, given to `application_builder`).
APPLICATION_ARGUMENTS = {
    "include_top": True,
    "weights": None,
    "input_tensor": None,
    "input_shape": None,
    "pooling": None,
    "classes": 1000,
    "classifier_activation": "softmax",
    "include_preprocessing": None,
    "name": None,
}
POOLINGS = (None, "avg", "max")


def application_builder(classes=1000):
    """Decorator: a family builder that takes keras.applications' arguments.

    The decorated function marks with a keyword-only parameter `application`
    where keras.applications' arguments go in its signature; the builder's
    signature (what `inspect.signature` and users see) has them there, with
    their defaults (`classes` defaulting to `classes`), and the parameters
    that follow `application` become ordinary ones again, so calls bind as
    they would to the spelled-out signature. The function receives them as
    the dict `application`, ready for `Application(..., **application)`.

    Example:

    >>> @application_builder(classes=10)
    ... def tiny(depth=2, *, application, seed=None):
    ...     return depth, application["classes"], application["include_top"], seed
    >>> tiny(3, seed=0)
    (3, 10, True, 0)
    >>> list(inspect.signature(tiny).parameters)[:3], inspect.signature(tiny).parameters["classes"]
    (['depth', 'include_top', 'weights'], <Parameter "classes=10">)
    """
    defaults = dict(APPLICATION_ARGUMENTS, classes=classes)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    spelled = [inspect.Parameter(key, kind, default=value) for key, value in defaults.items()]

    def decorator(body):
        parameters = list(inspect.signature(body).parameters.values())
        names = [p.name for p in parameters]
        if "application" not in names or parameters[names.index("application")].kind is not (
            inspect.Parameter.KEYWORD_ONLY
        ):
            raise TypeError(f"`{body.__name__}` needs a keyword-only parameter `application`.")
        at = names.index("application")
        after = [p.replace(kind=kind) for p in parameters[at + 1 :]]
        signature = inspect.Signature(parameters[:at] + spelled + after)

        @functools.wraps(body)
        def builder(*args, **kwargs):
            try:
                arguments = signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{body.__name__}() {error}") from None
            arguments.apply_defaults()
            values = dict(arguments.arguments)
            application = {key: values.pop(key) for key in defaults}
            return body(**values, application=application)

        builder.__signature__ = signature  # inspect.signature reads it before `__wrapped__`
        return builder

    return decorator


class Application:
    """The keras.applications arguments of one builder call, validated.

    Args:
        arch: Architecture name (the builder's default model name), the key
            of its published weights.
        options: The builder's `ConvOptions`. `app.options` is the same with
            the seed resolved: the given one, else the seed of the published
            weights named by `weights` (their frozen kernels are defined by
            it), else a fresh draw.
        default_size: Default input height/width with `include_top=True`.
        min_size: Smallest accepted input height/width.
        The other arguments are keras.applications'.
    """

    def __init__(
        self,
        arch,
        *,
        options,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        include_preprocessing,
        name,
        default_size,
        min_size,
    ):
        if keras.config.image_data_format() != "channels_last":
            raise ValueError(
                "keras_lc.zoo builds channels_last models. Received: "
                f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
            )
        self.arch = arch
        self.include_top = check_bool(include_top, "include_top")
        if include_top:
            positive_int(classes, "classes")
        self.classes = classes
        self.entry = check_weights(weights, arch, include_top, classes, options.frozen_spatial)
        self.weights = weights
        seed = options.seed
        published_seed = self.entry.model_kwargs.get("seed") if self.entry else None
        if published_seed is not None:
            if seed not in (None, published_seed):
                raise ValueError(
                    f"The weights {weights!r} of '{arch}' were trained from seed={published_seed}, "
                    "which defines their seeded (frozen) kernels: pass seed=None or "
                    f"seed={published_seed}. Received: seed={seed}"
                )
            seed = published_seed
        self.options = dataclasses.replace(options, seed=resolve_seed(seed))
        published_form = self.entry.model_kwargs.get("implementation") if self.entry else None
        if published_form and options.implementation == "auto" and options.lc:
            self.options = dataclasses.replace(self.options, implementation=published_form)
        self.preprocessing = preprocessing_for(include_preprocessing, self.entry, weights)
        self.pooling = check_choice(pooling, "pooling", POOLINGS)
        self.classifier_activation = _check_activation(classifier_activation, weights)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = arch if name is None else name
        if input_tensor is not None and not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "`input_tensor` must be a Keras tensor (from `keras.Input()` or a layer). "
                f"Received: input_tensor of type {type(input_tensor).__name__}"
            )
        if input_shape is None and input_tensor is not None:
            input_shape = tuple(input_tensor.shape[1:])
        self.input_tensor = input_tensor
        self.input_shape = _obtain_input_shape(input_shape, default_size, min_size, include_top)

    def input(self):
        """The image input: `input_tensor`, or a new `keras.Input`."""
        if self.input_tensor is not None:
            return self.input_tensor
        return keras.Input(shape=self.input_shape, name="input")

    def preprocess(self, inputs):
        """`inputs` through the `include_preprocessing` normalization (a stock
        `Normalization` layer named `preprocessing`), or unchanged."""
        if self.preprocessing is None:
            return inputs
        return preprocessing_layer(self.preprocessing)(inputs)

    def model(self, image_input, features):
        """The head on `features`, the functional model, and its weights."""
        options = self.options
        x = features
        if self.include_top:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
            x = _dense(self.classes, self.classifier_activation, int(x.shape[-1]), options)(x)
        elif self.pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif self.pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        inputs = image_input
        if self.input_tensor is not None:
            sources = keras.utils.get_source_inputs(self.input_tensor)
            inputs = sources[0] if len(sources) == 1 else sources
        model = keras.Model(inputs, x, name=self.name)
        return load_weights(model, self.weights, self.arch, self.include_top, self.entry)


def _dense(classes, activation, features, options):
    seed = options.seed_for("predictions")
    return keras.layers.Dense(
        classes,
        activation=activation,
        kernel_initializer=TorchUniform(seed),
        bias_initializer=TorchUniform(seed, STREAM_BIAS, fan_in=features),
        name="predictions",
    )


def _check_activation(classifier_activation, weights):
    """keras.applications' check: pretrained heads allow only None or softmax."""
    try:
        activation = keras.activations.get(classifier_activation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "`classifier_activation` must be None, an activation name or a callable. "
            f"Received: classifier_activation={classifier_activation!r}"
        ) from error
    allowed = {keras.activations.get("softmax"), keras.activations.get(None)}
    if weights is not None and activation not in allowed:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed "
            "for the `classifier_activation` argument when using "
            "pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation}"
        )
    return classifier_activation


def _obtain_input_shape(input_shape, default_size, min_size, include_top):
    """keras.applications' `obtain_input_shape` for channels_last, same messages."""
    if input_shape is None:
        input_shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    else:
        received = input_shape
        try:
            input_shape = tuple(input_shape)
        except TypeError:
            input_shape = ()
        if len(input_shape) != 3 or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
            for d in input_shape
        ):
            raise ValueError(
                "`input_shape` must be a tuple of three integers. "
                f"Received: input_shape={received!r}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"The channel dimension of `input_shape` must be defined. "
                f"Received: input_shape={input_shape}"
            )
        if any(d is not None and d < min_size for d in input_shape[:2]):
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size}; "
                f"Received: input_shape={input_shape}"
            )
    if include_top and None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static `input_shape`. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape
