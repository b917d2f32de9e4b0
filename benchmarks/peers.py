"""Peer ONNX ports of GLiNER2, measured on the same checkpoint when they can load it offline.

Only with `python -m benchmarks.run --peers`. Peers are installed with `pip install --no-deps
--target` into `benchmarks/.cache/peers/site/` (their runtime dependencies, numpy, onnxruntime,
transformers and huggingface_hub, are already in the project's environment), so they never become a
dependency of anything.

- gliner2-onnx 0.1.1 (`GLiNER2ONNXRuntime(dir)`): reads `gliner2_config.json` and four graphs with
  its own signatures. Its wheel ships no exporter, so `export_gliner2_onnx_layout` writes that
  layout from the same checkpoint: our encoder graph (hard-linked), and its span_rep, count_embed
  and classifier graphs exported from gliner2's own modules. One text per call (no batching),
  entities and classification only (no relations or mixed schemas), no long-text chunking.
- fast-gliner 0.3.2: loads one fused graph `onnx/model.onnx` whose input/output contract lives in
  its compiled Rust code; no exporter ships in the wheel, so it cannot load a local export of this
  checkpoint. Not measured (see `FAST_GLINER_NOTE`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Tuple

from benchmarks.base import CACHE_ROOT, REPO_ROOT, Implementation, ImplSpec, Prepared, log, ort_session_options
from benchmarks.workloads import ENTITY_LABELS, Workload

PEERS_DIR = CACHE_ROOT / "peers"
SITE_DIR = PEERS_DIR / "site"
GLINER2_ONNX_VERSION = "0.1.1"
FAST_GLINER_NOTE = (
    "fast-gliner 0.3.2 not measured: it is on PyPI, but it loads a single fused graph (onnx/model.onnx) whose "
    "input/output contract is compiled into its Rust extension and its wheel ships no exporter, so it cannot load "
    "a local export of this checkpoint."
)


def ensure_installed() -> None:
    """gliner2-onnx into benchmarks/.cache/peers/site (PyPI, no dependencies)."""
    if (SITE_DIR / "gliner2_onnx" / "runtime.py").is_file():
        return
    log(f"installing gliner2-onnx=={GLINER2_ONNX_VERSION} into {SITE_DIR} (--no-deps)")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(SITE_DIR), f"gliner2-onnx=={GLINER2_ONNX_VERSION}"],
        check=True,
    )


def layout_dir(prepared: Prepared) -> Path:
    return prepared.cache_dir / "peer-gliner2-onnx"


def peer_specs(prepared: Prepared) -> Tuple[List[ImplSpec], List[str]]:
    """Peers that can run here, and notes for the others."""
    notes = [FAST_GLINER_NOTE,
             "gliner2-onnx: one text per call (batch rows loop over texts), no relations/mixed schema, no long-text "
             "chunking: those cells are empty. Its layout is exported by benchmarks/peers.py from the same checkpoint."]
    specs = [ImplSpec("peer-gliner2-onnx", f"gliner2-onnx {GLINER2_ONNX_VERSION} (peer)", "peer", "fp32", "peer")]
    return specs, notes


def prepare_layout(prepared: Prepared) -> Path:
    """gliner2-onnx's folder layout for the benchmark checkpoint (built once, in a child process)."""
    target = layout_dir(prepared)
    if (target / "gliner2_config.json").is_file():
        return target
    log(f"writing the gliner2-onnx layout to {target}")
    subprocess.run([sys.executable, "-m", "benchmarks.peers", "export", str(prepared.checkpoint), str(prepared.onnx_dir), str(target)],
                   check=True, cwd=REPO_ROOT)
    return target


def export_gliner2_onnx_layout(checkpoint: Path, onnx_dir: Path, target: Path) -> None:
    """Write gliner2-onnx's layout: gliner2_config.json, config.json, tokenizer files and
    encoder/classifier/span_rep/count_embed graphs with the input names its runtime feeds."""
    import torch
    from gliner2 import GLiNER2

    model = GLiNER2.from_pretrained(str(checkpoint)).eval()
    scratch = target.with_name(target.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    metadata = json.loads((onnx_dir / "gliner2_onnx.json").read_text())
    encoder = onnx_dir / metadata["variants"]["fp32"]["encoder"]
    try:
        os.link(encoder, scratch / "encoder.onnx")  # same file, no 1.1 GB copy
    except OSError:
        shutil.copyfile(encoder, scratch / "encoder.onnx")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        if (onnx_dir / name).is_file():
            shutil.copyfile(onnx_dir / name, scratch / name)

    hidden = metadata["hidden_size"]

    # gliner2's modules are registered as submodules so that their weights export as initializers.
    class SpanRep(torch.nn.Module):
        """[1, T, H] token states + [1, N] start/end token indices -> [1, N, H] span vectors
        (gliner2's SpanMarkerV0 on the given spans)."""

        def __init__(self):
            super().__init__()
            self.marker = model.span_rep.span_rep_layer

        def forward(self, hidden_states, span_start_idx, span_end_idx):
            starts = self.marker.project_start(hidden_states)
            ends = self.marker.project_end(hidden_states)
            size = hidden_states.shape[-1]
            start_rep = torch.gather(starts, 1, span_start_idx.unsqueeze(-1).expand(-1, -1, size))
            end_rep = torch.gather(ends, 1, span_end_idx.unsqueeze(-1).expand(-1, -1, size))
            return self.marker.out_project(torch.cat([start_rep, end_rep], dim=-1).relu())

    class CountEmbed(torch.nn.Module):
        """[L, H] label embeddings -> [L, H] instance-0 queries (gliner2-onnx fixes the count to 1)."""

        def __init__(self):
            super().__init__()
            self.count_embed = model.count_embed

        def forward(self, label_embeddings):
            return self.count_embed(label_embeddings, 1)[0]

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = model.classifier

        def forward(self, hidden_state):
            return self.classifier(hidden_state)

    with torch.no_grad():
        torch.onnx.export(SpanRep(), (torch.randn(1, 12, hidden), torch.zeros(1, 20, dtype=torch.long), torch.zeros(1, 20, dtype=torch.long)),
                          str(scratch / "span_rep.onnx"), input_names=["hidden_states", "span_start_idx", "span_end_idx"],
                          output_names=["span_rep"], dynamic_axes={"hidden_states": {1: "T"}, "span_start_idx": {1: "N"}, "span_end_idx": {1: "N"}},
                          opset_version=18, dynamo=False)
        torch.onnx.export(CountEmbed(), (torch.randn(3, hidden),), str(scratch / "count_embed.onnx"), input_names=["label_embeddings"],
                          output_names=["queries"], dynamic_axes={"label_embeddings": {0: "L"}}, opset_version=18, dynamo=False)
        torch.onnx.export(Classifier(), (torch.randn(3, hidden),), str(scratch / "classifier.onnx"), input_names=["hidden_state"],
                          output_names=["logits"], dynamic_axes={"hidden_state": {0: "L"}}, opset_version=18, dynamo=False)
    config = {
        "max_width": int(metadata["max_width"]),
        "special_tokens": {token: int(i) for token, i in metadata["special_token_ids"].items()},
        "onnx_files": {"fp32": {"encoder": "encoder.onnx", "classifier": "classifier.onnx", "span_rep": "span_rep.onnx", "count_embed": "count_embed.onnx"}},
    }
    (scratch / "gliner2_config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)


class GLiNER2OnnxPeer(Implementation):
    """gliner2-onnx's GLiNER2ONNXRuntime behind the benchmark's three calls."""

    def __init__(self, spec: ImplSpec, runtime: Any, load_seconds: float):
        self.spec = spec
        self.runtime = runtime
        self.load_seconds = load_seconds

    def supports(self, kind: str, workload: Workload) -> bool:
        return workload.schema == "entities" and kind != "long"

    def run_batch(self, workload: Workload, batch_size: int) -> Any:
        # No batching in gliner2-onnx: a batch is a loop, as its users write it.
        return [self.runtime.extract_entities(text, ENTITY_LABELS) for text in workload.texts]

    def run_single(self, workload: Workload, index: int) -> Any:
        return self.runtime.extract_entities(workload.texts[index], ENTITY_LABELS)

    def run_long(self, workload: Workload, batch_size: int) -> Any:
        raise NotImplementedError("gliner2-onnx has no long-text chunking")


def load_peer(spec: ImplSpec, prepared: Prepared) -> Implementation:
    """Install (if needed), write the layout (if needed) and load a peer with the benchmark's
    ONNX Runtime thread settings."""
    if spec.key != "peer-gliner2-onnx":
        raise ValueError(f"unknown peer {spec.key}")
    ensure_installed()
    folder = prepare_layout(prepared)
    # The downloaded peer package is a runtime plugin outside the project, installed with --target into
    # SITE_DIR: it becomes importable only here, appended so that the project's own packages keep precedence.
    if str(SITE_DIR) not in sys.path:
        sys.path.append(str(SITE_DIR))
    import onnxruntime as ort
    from gliner2_onnx import GLiNER2ONNXRuntime as PeerRuntime

    start = time.perf_counter()
    runtime = PeerRuntime(folder)
    load_seconds = time.perf_counter() - start
    # Same threading as every other implementation (its default, ORT's, is also 2 threads on this
    # machine, but explicit is comparable everywhere). Not part of its load time.
    options = ort_session_options()
    for name in ("encoder", "classifier", "span_rep", "count_embed"):
        path = folder / f"{name}.onnx"
        setattr(runtime, name, ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"]))
    return GLiNER2OnnxPeer(spec, runtime, load_seconds)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "export":
        export_gliner2_onnx_layout(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        raise SystemExit("usage: python -m benchmarks.peers export CHECKPOINT ONNX_DIR TARGET")
