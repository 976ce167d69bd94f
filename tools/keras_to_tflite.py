"""Convert keras.applications' MobileNet, MobileNetV2, MobileNetV3Large and EfficientNetB0 (random weights)
to LiteRT flat buffers.

The runtime benchmark (``python -m sepconv bench --tflite DIR``) times LiteRT with its XNNPACK
delegate on these files. Converting needs TensorFlow, which the book does not install; run this
in an environment that has it (``pip install tensorflow-cpu``):

    python tools/keras_to_tflite.py DIR

It writes ``DIR/{mobilenet_v1,mobilenet_v2,mobilenet_v3_large,efficientnet_b0}_b{1,32}.tflite``: float32,
224x224 inputs, no softmax, BatchNorm folded by the converter. MobileNetV3Large without its input rescaling
(``include_preprocessing=False``); EfficientNetB0 keeps its own (a rescaling and a normalization, two
element-wise layers in front of the stem), which keras.applications cannot leave out. Timing only needs ``ai-edge-litert`` (the interpreter).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def convert(folder: str, batches=(1, 32)) -> None:
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    os.makedirs(folder, exist_ok=True)
    networks = (("mobilenet_v1", keras.applications.MobileNet, {}),
                ("mobilenet_v2", keras.applications.MobileNetV2, {}),
                ("mobilenet_v3_large", keras.applications.MobileNetV3Large, {"include_preprocessing": False}),
                ("efficientnet_b0", keras.applications.EfficientNetB0, {}))
    for name, constructor, options in networks:
        for batch in batches:
            model = constructor(weights=None, input_shape=(224, 224, 3), classifier_activation=None, **options)
            signature = [tf.TensorSpec((batch, 224, 224, 3), tf.float32)]
            function = tf.function(lambda x: model(x, training=False), input_signature=signature)
            frozen = convert_variables_to_constants_v2(function.get_concrete_function())
            path = os.path.join(folder, f"{name}_b{batch}.tflite")
            with open(path, "wb") as f:
                f.write(tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert())
            print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/keras_to_tflite.py DIR")
    convert(sys.argv[1])
