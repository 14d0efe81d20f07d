"""Checks an exported model.onnx the way a third party would and runs it in onnxruntime.

usage: onnx_check.py MODEL.onnx INPUTS.json
INPUTS.json: {"name": {"shape": [...], "data": [...]}, ...}
Prints JSON: {"output": [...], "shape": [...], "inputs": [...], "outputs": [...]}.
Fails (non-zero) if onnx.checker.check_model(full_check=True) rejects the file.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, inputs_path = sys.argv[1], sys.argv[2]
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)

with open(inputs_path) as handle:
    spec = json.load(handle)
feeds = {name: np.asarray(value["data"], dtype=np.float32).reshape(value["shape"]) for name, value in spec.items()}

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
output = session.run(None, feeds)[0]
print(json.dumps({
    "output": output.astype(np.float64).ravel().tolist(),
    "shape": list(output.shape),
    "inputs": [i.name for i in session.get_inputs()],
    "outputs": [o.name for o in session.get_outputs()],
}))
