"""Times onnxruntime (Python) on a bundle's model.onnx at batch 1 and 256, the way
edge-runtime/benches/engines.rs times tract: the graph alone, inputs fixed, median latency.

usage: bench_ort.py MODEL.onnx THREADS
"""
import sys
import time

import numpy as np
import onnxruntime as ort

path, threads = sys.argv[1], int(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(1)
print(f"{path}, onnxruntime {ort.__version__}, intra_op_num_threads={threads}:")
for batch, runs in [(1, 20000), (256, 2000)]:
    feeds = {i.name: rng.standard_normal([batch] + [d if isinstance(d, int) else 1 for d in i.shape[1:]]).astype(np.float32) for i in session.get_inputs()}
    for _ in range(runs // 10):
        session.run(None, feeds)
    times = []
    started = time.perf_counter()
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    times.sort()
    print(f"  ort   batch {batch:>3}: {batch * runs / total:>10.0f} samples/s, p50 {times[runs // 2] * 1e6:>8.2f} µs")
