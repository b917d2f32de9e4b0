"""Optimum ONNX configs of the four GLiNER2 graphs (see exporters/modeling.py for the layout).

Every dimension that varies at serving time is a dynamic axis: batch, sequence length, number of
tasks, fields (labels), label markers, words and queries. The dummy sizes differ from one another
so that a dimension baked into the graph by mistake shows up in validation at other shapes.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from optimum.exporters.onnx.base import OnnxConfig
from optimum.exporters.onnx.config import TextEncoderOnnxConfig
from optimum.utils import DummyInputGenerator, DummyTextInputGenerator, NormalizedConfig, NormalizedTextConfig
from transformers import PretrainedConfig

from optimum_gliner2.exporters.model_patcher import GLiNER2ModelPatcher

#: Dummy sizes of the head graphs' dynamic axes (all distinct, and distinct from batch 2 / sequence 16).
HEAD_DUMMY_SIZES = {"num_tasks": 3, "num_fields": 4, "num_labels": 5, "num_words": 7, "num_queries": 6}


class NormalizedGLiNER2Config(NormalizedConfig):
    """Attribute names of the export config built by `gliner2_export_config` below."""

    HIDDEN_SIZE = "hidden_size"
    VOCAB_SIZE = "vocab_size"
    MAX_WIDTH = "max_width"
    MAX_COUNT = "max_count"


def gliner2_export_config(model) -> PretrainedConfig:
    """The dimensions every GLiNER2 OnnxConfig needs, gathered from a loaded gliner2 span model."""
    encoder_config = model.encoder.config
    return PretrainedConfig(
        hidden_size=encoder_config.hidden_size,
        vocab_size=encoder_config.vocab_size,
        num_attention_heads=encoder_config.num_attention_heads,
        num_hidden_layers=encoder_config.num_hidden_layers,
        max_width=model.max_width,
        max_count=model.count_embed.max_count,
        encoder_model_type=encoder_config.model_type,
    )


class GLiNER2HeadsDummyInputGenerator(DummyInputGenerator):
    """Random float inputs for the head graphs, shaped by HEAD_DUMMY_SIZES."""

    SUPPORTED_INPUT_NAMES = (
        "prompt_embeddings", "field_embeddings", "max_instances", "label_embeddings", "word_embeddings", "queries"
    )  # fmt: skip

    def __init__(self, task: str, normalized_config: NormalizedConfig, batch_size: int = 2, **kwargs):
        self.hidden_size = normalized_config.hidden_size
        self.max_count = normalized_config.max_count
        self.batch_size = batch_size
        self.sizes = {name: kwargs.get(name, size) for name, size in HEAD_DUMMY_SIZES.items()}

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        sizes, hidden = self.sizes, self.hidden_size
        if input_name == "max_instances":
            return self.random_int_tensor([sizes["num_tasks"]], max_value=self.max_count + 1, min_value=1, framework=framework, dtype=int_dtype)
        shapes = {
            "prompt_embeddings": [sizes["num_tasks"], hidden],
            "field_embeddings": [sizes["num_tasks"], sizes["num_fields"], hidden],
            "label_embeddings": [sizes["num_labels"], hidden],
            "word_embeddings": [self.batch_size, sizes["num_words"], hidden],
            "queries": [self.batch_size, sizes["num_queries"], hidden],
        }
        return self.random_float_tensor(shapes[input_name], min_value=-2.0, max_value=2.0, framework=framework, dtype=float_dtype)


class GLiNER2OnnxConfig(OnnxConfig):
    """Shared settings of the GLiNER2 graphs."""

    NORMALIZED_CONFIG_CLASS = NormalizedGLiNER2Config
    DUMMY_INPUT_GENERATOR_CLASSES: Tuple = (GLiNER2HeadsDummyInputGenerator,)
    _MODEL_PATCHER = GLiNER2ModelPatcher
    DEFAULT_ONNX_OPSET = 18
    # The graphs agree with PyTorch to 1e-5; the plugin's own validation (exporters/validation.py)
    # also compares at other shapes and on decoded answers.
    ATOL_FOR_VALIDATION = 1e-4

    def __init__(self, config: PretrainedConfig, task: str = "information-extraction", **kwargs):
        super().__init__(config, task=task, **kwargs)

    @property
    def outputs(self) -> Dict[str, Dict[int, str]]:  # OnnxConfig maps outputs by task; ours are per graph
        return self._graph_outputs

    def post_process_exported_models(self, path, models_and_onnx_configs, onnx_files_subpaths):
        # Optimum calls this on the first graph's config once every graph is written: the place to
        # validate at other shapes and to write the runtime metadata, after which the folder loads.
        from optimum_gliner2.exporters.publishing import finalize_export

        finalize_export(path, models_and_onnx_configs, onnx_files_subpaths)
        return models_and_onnx_configs, onnx_files_subpaths


class GLiNER2EncoderOnnxConfig(GLiNER2OnnxConfig, TextEncoderOnnxConfig):
    """The transformer encoder; gliner2 calls it with input_ids and attention_mask only."""

    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig
    DUMMY_INPUT_GENERATOR_CLASSES = (DummyTextInputGenerator,)
    _graph_outputs = {"last_hidden_state": {0: "batch_size", 1: "sequence_length"}}

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        return {
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "sequence_length"},
        }


class GLiNER2CountEmbedOnnxConfig(GLiNER2OnnxConfig):
    _graph_outputs = {
        "count_logits": {0: "num_tasks"},
        "queries": {0: "num_tasks", 1: "num_steps", 2: "num_fields"},
    }

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        # max_instances: how many instances the host reads per task (1 for entities, max_count otherwise).
        return {
            "prompt_embeddings": {0: "num_tasks"},
            "field_embeddings": {0: "num_tasks", 1: "num_fields"},
            "max_instances": {0: "num_tasks"},
        }


class GLiNER2ClassifierOnnxConfig(GLiNER2OnnxConfig):
    _graph_outputs = {"logits": {0: "num_labels"}}

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        return {"label_embeddings": {0: "num_labels"}}


class GLiNER2SpanScorerOnnxConfig(GLiNER2OnnxConfig):
    _graph_outputs = {"span_logits": {0: "batch_size", 1: "num_queries", 2: "num_words"}}

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        return {
            "word_embeddings": {0: "batch_size", 1: "num_words"},
            "queries": {0: "batch_size", 1: "num_queries"},
        }


ONNX_CONFIG_CLASSES = {
    "encoder": GLiNER2EncoderOnnxConfig,
    "count_embed": GLiNER2CountEmbedOnnxConfig,
    "classifier": GLiNER2ClassifierOnnxConfig,
    "span_scorer": GLiNER2SpanScorerOnnxConfig,
}


def get_submodels_and_onnx_configs(model, task: str, float_dtype: str = "fp32", preprocessors: Optional[list] = None):
    """What Optimum exports for a gliner2 model: (first config, {graph: (module, OnnxConfig)})."""
    from optimum_gliner2.exporters.modeling import split_into_submodels

    export_config = gliner2_export_config(model)
    encoder_config = model.encoder.config
    models_and_configs = {}
    for name, submodel in split_into_submodels(model).items():
        config_class = ONNX_CONFIG_CLASSES[name]
        config = encoder_config if name == "encoder" else export_config
        models_and_configs[name] = (
            submodel,
            config_class(config, task=task, float_dtype=float_dtype, preprocessors=preprocessors),
        )
    return models_and_configs["encoder"][1], models_and_configs
