"""The prepared GPU check: indexing end-to-end vs model-only on CUDA (mixed precision), GPU memory,
and FAISS GPU training time for 1M vectors. For a session that is lent a GPU machine.

Usage: .venv/bin/python bench/gpu.py [--quick]
Exits with status 1 and one line ("no CUDA device ...") where there is no GPU; publishes nothing then.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import torch
from common import arguments, command_line, fmt, machine, machine_line, median, publish, table

MODEL = "random:ViT-B-32"
BATCH = 256  # the indexer's GPU default


def indexing(kind: str, n: int, encoder, rounds: int) -> dict:
    import indexing_parts as P
    from photos import collection_files, ensure_collection

    folder = ensure_collection(kind, n, workers=os.cpu_count() or 1)
    files = collection_files(folder)
    pixels = P.predecode(files, encoder.preprocess_cfg)
    e2e, model = [], []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(rounds):
        model.append(P.model_only(pixels, encoder, BATCH)[0])
        r, store, settings = P.end_to_end(folder, encoder, BATCH)
        e2e.append(r)
        P.drop_store(store, settings)
    serial = P.serial_baseline(files[: min(len(files), 64)], encoder, 64)[0]
    out = {
        "images": len(files),
        "e2e_ips": median([r["images_per_s"] for r in e2e]),
        "model_ips": median([r["images_per_s"] for r in model]),
        "serial_ips_first64": serial["images_per_s"],
        "peak_gpu_mem_mib": torch.cuda.max_memory_allocated() / 2**20,
        "end_to_end": e2e,
        "model_only": model,
    }
    out["e2e_over_model"] = out["e2e_ips"] / out["model_ips"]
    return out


def faiss_training(n: int) -> dict:
    """Coarse k-means and a full IVF-PQ training for n synthetic CLIP-like vectors, on the GPU and the CPU."""
    import faiss
    from synth import image_vectors, make_world

    from clipsearch.vectors.policy import choose_layout, training_size

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return {"skipped": "this FAISS build has no GPU support (pip install faiss-gpu-cu12, the [gpu] extra)"}
    t = time.perf_counter()
    xb = np.concatenate([v for _, v in image_vectors(make_world(n, 0), n)])
    out = {"n": n, "generate_s": time.perf_counter() - t}
    layout = choose_layout(n, xb.shape[1], 50_000)
    sample = xb[: training_size(layout, n, xb.shape[1])]
    out.update(nlist=layout.nlist, sample=len(sample))
    for where, gpu in (("gpu", True), ("cpu", False)):
        km = faiss.Kmeans(xb.shape[1], layout.nlist, niter=20, gpu=gpu, seed=0)
        t = time.perf_counter()
        km.train(sample)
        out[f"kmeans_{where}_s"] = time.perf_counter() - t
    res = faiss.StandardGpuResources()
    cpu_index = faiss.index_factory(xb.shape[1], f"IVF{layout.nlist},PQ64", faiss.METRIC_INNER_PRODUCT)
    gpu_index = faiss.index_cpu_to_gpu(res, 0, cpu_index)
    t = time.perf_counter()
    gpu_index.train(sample)
    out["ivfpq64_8bit_train_gpu_s"] = time.perf_counter() - t
    t = time.perf_counter()
    gpu_index.add(xb)
    out["ivfpq64_8bit_add_gpu_s"] = time.perf_counter() - t
    return out


def section(res: dict, quick: bool) -> str:
    rows = [
        [
            k,
            r["images"],
            fmt(r["e2e_ips"], 1),
            fmt(r["model_ips"], 1),
            f"**{fmt(r['e2e_over_model'])}**",
            fmt(r["serial_ips_first64"], 1),
            fmt(r["peak_gpu_mem_mib"], 0),
        ]
        for k, r in res["sets"].items()
    ]
    f = res["faiss"]
    if "skipped" in f:
        faiss_text = f"FAISS GPU: not measured ({f['skipped']})."
    else:
        faiss_text = (
            f"FAISS, {f['n']:,} synthetic vectors, coarse k-means with the policy's nlist {f['nlist']} on its "
            f"{f['sample']:,}-vector sample: GPU {fmt(f['kmeans_gpu_s'])} s, CPU ({res['machine']['cores']} cores) "
            f"{fmt(f['kmeans_cpu_s'])} s; `IVF{f['nlist']},PQ64` (8-bit) trained on the GPU in "
            f"{fmt(f['ivfpq64_8bit_train_gpu_s'])} s, all vectors added in {fmt(f['ivfpq64_8bit_add_gpu_s'])} s."
        )
    return f"""## 5. GPU

Command: `{command_line("gpu", quick)}`

Machine: {machine_line(res["machine"])}; GPU: {res["gpu"]}

`{MODEL}`, batch {BATCH}, mixed precision ({res["amp"]}), pinned memory and non-blocking copies as the indexer does.

{table(["set", "images", "end-to-end img/s", "model-only img/s", "end-to-end / model-only", "serial img/s (64 images)", "peak GPU memory (MiB)"], rows)}

Target end-to-end / model-only >= 0.9 on a GPU machine.

{faiss_text}
"""


def main() -> None:
    args = arguments(__doc__, "fewer images and 200k vectors for FAISS").parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: bench/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing measured")
        sys.exit(1)
    from clipsearch.models import load_encoder
    from clipsearch.models.openclip import autocast_dtype

    encoder = load_encoder(MODEL, device="cuda", runtime="torch")
    n12, n1, rounds, nvec = (128, 256, 2, 200_000) if args.quick else (512, 1024, 3, 1_000_000)
    res = {
        "machine": machine(),
        "quick": args.quick,
        "gpu": torch.cuda.get_device_name(0),
        "amp": str(autocast_dtype(encoder.torch_device)),
        "sets": {},
    }
    import indexing_parts as P

    P.model_only([np.zeros((224, 224, 3), np.uint8)] * 8, encoder, 8)  # warm-up (CUDA context, kernels)
    for kind, n in (("12mp", n12), ("1mp", n1)):
        res["sets"][kind] = indexing(kind, n, encoder, rounds)
        print(kind, {k: v for k, v in res["sets"][kind].items() if not isinstance(v, list)}, flush=True)
    res["faiss"] = faiss_training(nvec)
    print(res["faiss"], flush=True)
    publish("gpu", res, section(res, args.quick))


if __name__ == "__main__":
    main()
