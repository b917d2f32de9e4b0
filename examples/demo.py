"""Demo: a small trained GLiNER2, exported with `optimum-cli`, answering on ONNX Runtime as PyTorch does.

Run with `make demo`, or `python -m examples.demo` from the repository root:

1. builds (once, then cached) a small GLiNER2 trained offline with gliner2's own trainer
   (tests/support/trained_fixture.py: an all-MiniLM-L6-v2 encoder taught persons, organizations,
   locations, dates, positive/negative sentiment, two relations and a product record);
2. exports it with `optimum-cli export onnx` and adds the INT8 variant;
3. runs `ORTModelForGLiNER2` on sentences the training data never contained, for entities, classification,
   relations and JSON, checks every answer against gliner2's PyTorch model, and shows INT8's answers
   next to FP32's.

`make demo MODEL=fastino/gliner2-multi-v1` (any hub id or local GLiNER2 checkpoint) runs steps 2 and 3 on that
model instead. The hub must be reachable, or the model already in the Hugging Face cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ENTITY_LABELS = ["person", "organization", "location", "date"]
SENTIMENT = {"sentiment": ["positive", "negative"]}
RELATIONS = ["works_for", "located_in"]
PRODUCT = {"product": ["name::str", "price::str", "maker::str"]}

# Sentences of the fixture's held-out templates, with names and sentiment words the training data never saw.
# The fixture reads sentiment labels by position (trained with gliner2's label shuffling off; see
# tests/support/trained_fixture.py), so SENTIMENT keeps the training order: positive first.
TASK_CALLS: Dict[str, Callable[[Any, str], Any]] = {
    "entities": lambda model, text: model.extract_entities(text, ENTITY_LABELS, include_confidence=True),
    "relations": lambda model, text: model.extract_relations(text, RELATIONS, include_confidence=True),
    "json": lambda model, text: model.extract_json(text, PRODUCT, include_confidence=True),
    "classification": lambda model, text: model.classify_text(text, SENTIMENT, include_confidence=True),
}
#: (task, sentence, what the header adds).
DEMO_SENTENCES: List[Tuple[str, str, str]] = [
    ("entities", "Last year Amir Dubois left Zenith Foods and settled in Bilbao on March 3, 2021.", ""),
    ("entities", "Carlos Mendes visited Graz on July 14, 2023 with colleagues from Aurora Labs.", ""),
    ("relations", "Daria Sato has been a manager at Brightwater Group in Accra since 2019.", ""),
    ("json", "Crescent Labs priced its Echo camera at $349 this spring.", ""),
    ("classification", "Honestly, Crescent Bank was dreadful and I will never go back.", ""),
    ("classification", "Our visit to Perth with Westbrook Motors was a delight.", ""),
]


def _optimum_cli(*arguments: str) -> None:
    cli = shutil.which("optimum-cli", path=str(Path(sys.executable).parent))
    command = [cli] if cli else [sys.executable, "-m", "optimum.commands.optimum_cli"]
    command += list(arguments)
    print("$", " ".join(["optimum-cli", *arguments]))
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"optimum-cli failed:\n{completed.stderr.strip()[-2000:]}")


def _checkpoint_reachable(model: str) -> Optional[str]:
    """None when `model` is a local checkpoint or a hub id that can be fetched (or is cached), else why not."""
    if Path(model).is_dir():
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    try:
        hf_hub_download(model, "config.json")
    except HFValidationError:
        return f"{model!r} is neither a local folder nor a hub id."
    except Exception as error:  # offline, unknown repository, no network: all end the demo the same way
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(error).__name__}: {error}"
        return (
            f"cannot get {model} from the Hugging Face hub ({reason}), and it is not in the local cache. "
            f"Run the demo where the hub is reachable, download it first (`huggingface-cli download {model}`), "
            "or pass a local GLiNER2 checkpoint folder."
        )
    return None


def _strip_confidences(result: Any) -> Any:
    if isinstance(result, dict):
        if "confidence" in result and "text" in result:
            return result["text"]
        if "confidence" in result and "label" in result:
            return result["label"]
        return {key: _strip_confidences(value) for key, value in result.items() if key not in ("start", "end")}
    if isinstance(result, list):
        return [_strip_confidences(value) for value in result]
    return result


def _same(expected: Any, actual: Any, tolerance: float = 1e-4) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            _same(expected[k], actual[k], tolerance) for k in expected
        )
    if isinstance(expected, (list, tuple)):
        return isinstance(actual, (list, tuple)) and len(expected) == len(actual) and all(
            _same(e, a, tolerance) for e, a in zip(expected, actual)
        )
    if isinstance(expected, float):
        return isinstance(actual, float) and abs(expected - actual) <= tolerance
    return expected == actual


def _show(result: Any) -> str:
    return json.dumps(_strip_confidences(result), ensure_ascii=False)


def run_demo(checkpoint: str, work: Path) -> int:
    """Export `checkpoint`, run the demo sentences, compare with PyTorch and INT8; 0 when ONNX matches PyTorch."""
    exported = work / "onnx"
    _optimum_cli("export", "onnx", "--model", checkpoint, str(exported))
    print(f"$ python -m optimum_gliner2.variants {exported} --int8")
    from optimum_gliner2.variants import quantize_gliner2

    quantize_gliner2(exported)

    from gliner2 import GLiNER2

    from optimum_gliner2 import ORTModelForGLiNER2

    fp32 = ORTModelForGLiNER2.from_pretrained(exported)
    int8 = ORTModelForGLiNER2.from_pretrained(exported, precision="int8")
    torch_model = GLiNER2.from_pretrained(checkpoint)
    all_same = True
    for task, text, remark in DEMO_SENTENCES:
        call = TASK_CALLS[task]
        answer, reference, quantized = call(fp32, text), call(torch_model, text), call(int8, text)
        same = _same(reference, answer)
        all_same &= same
        print(f"\n[{task}{remark}] {text}")
        print(f"  ONNX FP32 : {_show(answer)}")
        print(f"  PyTorch   : {'same answers' if same else 'DIFFERENT: ' + _show(reference)} (confidences within 1e-4)")
        print(f"  ONNX INT8 : {_show(quantized)}{'' if _strip_confidences(quantized) == _strip_confidences(answer) else '  (differs from FP32)'}")
    print(f"\nsame answers as gliner2's PyTorch model on every sentence: {all_same}")
    return 0 if all_same else 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="A hub id or local GLiNER2 checkpoint instead of the trained fixture.")
    args = parser.parse_args(argv)
    if args.model:
        problem = _checkpoint_reachable(args.model)
        if problem:
            print(f"Error: {problem}", file=sys.stderr)
            return 2
        checkpoint = args.model
    else:
        from tests.support.trained_fixture import trained_checkpoint

        print("The trained GLiNER2 fixture (built once, then cached; about 5 minutes the first time on 2 CPUs):")
        checkpoint = str(trained_checkpoint())
        print(f"checkpoint: {checkpoint}")
    work = Path(tempfile.mkdtemp(prefix="gliner2-demo-"))
    try:
        return run_demo(checkpoint, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
