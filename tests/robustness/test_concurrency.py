"""One model used from 8 threads at once gives the answers of serial calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from tests.support.parity_corpus import CASES, run_case


def test_eight_threads_give_serial_answers(exported_dirs):
    model = GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm_v2"])
    cases = [case for case in CASES if "long" not in case.name][:24]
    serial = [run_case(model, case) for case in cases]
    work = [(i, case) for _ in range(3) for i, case in enumerate(cases)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda item: (item[0], run_case(model, item[1])), work))
    for index, result in concurrent:
        assert result == serial[index], cases[index].name
