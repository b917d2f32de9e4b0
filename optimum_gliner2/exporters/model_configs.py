"""Optimum ONNX configs of the GLiNER2 graphs (see exporters/modeling.py for the layout): four for
span models, five for boundary (GLiNER2.5) models, which share the encoder and classifier configs.

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

from optimum_gliner2.bundle.format import BOUNDARY
from optimum_gliner2.exporters.loading import model_architecture
from optimum_gliner2.exporters.model_patcher import GLiNER2ModelPatcher

#: Dummy sizes of the head graphs' dynamic axes (all distinct, and distinct from batch 2 / sequence 16).
HEAD_DUMMY_SIZES = {"num_tasks": 3, "num_fields": 4, "num_labels": 5, "num_words": 7, "num_queries": 6,
                    "num_relations": 3, "num_pairs": 11, "num_spans": 5}  # fmt: skip


class NormalizedGLiNER2Config(NormalizedConfig):
    """Attribute names of the export config built by `gliner2_export_config` below."""

    HIDDEN_SIZE = "hidden_size"
    VOCAB_SIZE = "vocab_size"
    MAX_WIDTH = "max_width"
    MAX_COUNT = "max_count"
    POOL_SIZE = "pool_size"


def gliner2_export_config(model) -> PretrainedConfig:
    """The dimensions every GLiNER2 OnnxConfig needs, gathered from a loaded gliner2 model."""
    encoder_config = model.encoder.config
    if model_architecture(model) == BOUNDARY:
        head_dimensions = {
            "pool_size": model.boundary_head.shared_pool_builder.pool_size,
        }
    else:
        head_dimensions = {"max_width": model.max_width, "max_count": model.count_embed.max_count}
    return PretrainedConfig(
        hidden_size=encoder_config.hidden_size,
        vocab_size=encoder_config.vocab_size,
        num_attention_heads=encoder_config.num_attention_heads,
        num_hidden_layers=encoder_config.num_hidden_layers,
        encoder_model_type=encoder_config.model_type,
        **head_dimensions,
    )


class GLiNER2HeadsDummyInputGenerator(DummyInputGenerator):
    """Random float inputs for the head graphs, shaped by HEAD_DUMMY_SIZES."""

    SUPPORTED_INPUT_NAMES = (
        "prompt_embeddings", "field_embeddings", "max_instances", "label_embeddings", "word_embeddings", "queries"
    )  # fmt: skip

    def __init__(self, task: str, normalized_config: NormalizedConfig, batch_size: int = 2, **kwargs):
        self.hidden_size = normalized_config.hidden_size
        self.max_count = getattr(normalized_config, "max_count", None)  # span models only
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


class GLiNER2BoundaryHeadDummyInputGenerator(DummyInputGenerator):
    """Word and query states with right-padded masks for the boundary head, shaped by HEAD_DUMMY_SIZES.

    The example is shorter than the pool's top-k on purpose: the graph must not depend on it."""

    SUPPORTED_INPUT_NAMES = (
        "text_states", "text_mask", "query_states", "query_mask", "spans", "span_mask",
        "field_queries", "field_mask", "modes", "anchor_fields", "group_mask",
    )  # fmt: skip
    #: record_head's example: two texts with two record groups of three fields, every mode present,
    #: the second text's last group padded.
    RECORD_MODES = ((0, 1), (2, -1))

    def __init__(self, task: str, normalized_config: NormalizedConfig, batch_size: int = 2, **kwargs):
        self.hidden_size = normalized_config.hidden_size
        self.batch_size = batch_size
        self.num_words = kwargs.get("num_words", HEAD_DUMMY_SIZES["num_words"])
        self.num_queries = kwargs.get("num_queries", HEAD_DUMMY_SIZES["num_queries"])
        self.num_spans = kwargs.get("num_spans", HEAD_DUMMY_SIZES["num_spans"])

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        if input_name in ("field_queries", "field_mask", "modes", "anchor_fields", "group_mask"):
            routing = self._record_routing(input_name)
            return routing.numpy() if framework == "np" else routing
        if input_name in ("spans", "span_mask"):  # explicit_spans: requested spans inside the words
            import torch

            shape = (self.batch_size, self.num_queries, self.num_spans)
            if input_name == "span_mask":
                return torch.ones(shape, dtype=torch.long)
            starts = torch.randint(0, self.num_words - 1, shape)
            return torch.stack((starts, starts + 1 + torch.randint(0, 2, shape)), dim=-1)
        if input_name == "text_mask":
            return self.random_mask_tensor([self.batch_size, self.num_words], framework=framework, dtype=int_dtype)
        if input_name == "query_mask":  # every query real: a masked query would hide its scores
            return self.random_int_tensor(
                [self.batch_size, self.num_queries], max_value=2, min_value=1, framework=framework, dtype=int_dtype
            )
        length = self.num_words if input_name == "text_states" else self.num_queries
        return self.random_float_tensor(
            [self.batch_size, length, self.hidden_size], min_value=-2.0, max_value=2.0, framework=framework, dtype=float_dtype
        )


    def _record_routing(self, input_name: str):
        import torch

        modes = torch.tensor(self.RECORD_MODES, dtype=torch.long)[: self.batch_size]
        present = modes >= 0
        if input_name == "modes":
            return modes
        if input_name == "group_mask":
            return present.long()
        if input_name == "anchor_fields":
            return torch.where(modes == 0, 0, -1)
        shape = (*modes.shape, HEAD_DUMMY_SIZES["num_fields"] - 1)
        if input_name == "field_mask":
            return present[..., None].expand(shape).long()
        return torch.arange(shape[-1]).remainder(self.num_queries).expand(shape).contiguous()


class GLiNER2RelationScorerDummyInputGenerator(DummyInputGenerator):
    """Word states, relation role markers and valid pairs (half-open spans inside the words) for
    the relation scorer, shaped by HEAD_DUMMY_SIZES."""

    SUPPORTED_INPUT_NAMES = ("text_states", "relation_roles", "pair_rows", "pair_relations", "pair_spans")

    def __init__(self, task: str, normalized_config: NormalizedConfig, batch_size: int = 2, **kwargs):
        self.hidden_size = normalized_config.hidden_size
        self.batch_size = batch_size
        self.sizes = {name: kwargs.get(name, size) for name, size in HEAD_DUMMY_SIZES.items()}

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        import torch

        words, relations, pairs = self.sizes["num_words"], self.sizes["num_relations"], self.sizes["num_pairs"]
        if input_name == "text_states":
            shape = [self.batch_size, words, self.hidden_size]
            return self.random_float_tensor(shape, min_value=-2.0, max_value=2.0, framework=framework, dtype=float_dtype)
        if input_name == "relation_roles":
            shape = [self.batch_size, relations, 2, self.hidden_size]
            return self.random_float_tensor(shape, min_value=-2.0, max_value=2.0, framework=framework, dtype=float_dtype)
        if input_name == "pair_rows":
            return self.random_int_tensor([pairs], max_value=self.batch_size, framework=framework, dtype=int_dtype)
        if input_name == "pair_relations":
            return self.random_int_tensor([pairs], max_value=relations, framework=framework, dtype=int_dtype)
        starts = torch.randint(0, words, (pairs, 2))
        ends = starts + 1 + (torch.rand(pairs, 2) * (words - starts)).long()  # in (start, words]
        return torch.stack((starts[:, 0], ends[:, 0], starts[:, 1], ends[:, 1]), dim=-1)


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


class GLiNER2BoundaryHeadOnnxConfig(GLiNER2OnnxConfig):
    """GLiNER2.5's boundary head: the shared candidate pool and its scores (exporters/modeling.py).

    The pool always has pool_size slots (candidate_mask says which hold a candidate), so the
    candidate axis is fixed; batch, words and queries are dynamic.
    """

    DUMMY_INPUT_GENERATOR_CLASSES = (GLiNER2BoundaryHeadDummyInputGenerator,)
    _graph_outputs = {
        "candidates": {0: "batch_size"},
        "candidate_mask": {0: "batch_size"},
        "pair_logits": {0: "batch_size", 1: "num_queries"},
        "null_logits": {0: "batch_size", 1: "num_queries"},
        "count_log_rates": {0: "batch_size", 1: "num_queries"},
    }

    #: Output axes that hold the pool's slots: always pool_size long.
    CANDIDATE_AXES = {"candidates": 1, "candidate_mask": 1, "pair_logits": 2}

    def fix_dynamic_axes(self, model_path, device: str = "cpu", dtype=None, input_shapes=None):
        # The tracer leaves the pool axis symbolic (and may borrow another axis's name for it);
        # declaring its fixed length tells ONNX Runtime and readers of the graph what it is.
        import onnx

        super().fix_dynamic_axes(model_path, device=device, dtype=dtype, input_shapes=input_shapes)
        model = onnx.load(str(model_path))
        for output in model.graph.output:
            axis = self.CANDIDATE_AXES.get(output.name)
            if axis is not None:
                dimension = output.type.tensor_type.shape.dim[axis]
                dimension.Clear()
                dimension.dim_value = self._normalized_config.pool_size
        onnx.save(model, str(model_path))

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        # text_states: each word's first-subword state, zero-padded; the masks are 1 for real entries.
        return {
            "text_states": {0: "batch_size", 1: "num_words"},
            "text_mask": {0: "batch_size", 1: "num_words"},
            "query_states": {0: "batch_size", 1: "num_queries"},
            "query_mask": {0: "batch_size", 1: "num_queries"},
        }


class GLiNER2RelationScorerOnnxConfig(GLiNER2OnnxConfig):
    """gliner2's relation scorer on host-proposed pairs; batch, words, relations and pairs are dynamic."""

    DUMMY_INPUT_GENERATOR_CLASSES = (GLiNER2RelationScorerDummyInputGenerator,)
    _graph_outputs = {"relation_logits": {0: "num_pairs"}}

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        # pair_spans: head start, head end, tail start, tail end (half-open word boundaries).
        return {
            "text_states": {0: "batch_size", 1: "num_words"},
            "relation_roles": {0: "batch_size", 1: "num_relations"},
            "pair_rows": {0: "num_pairs"},
            "pair_relations": {0: "num_pairs"},
            "pair_spans": {0: "num_pairs"},
        }


class GLiNER2ExplicitSpansOnnxConfig(GLiNER2BoundaryHeadOnnxConfig):
    """gliner2's explicit-span scoring (entity attributes, JSON choice fields): the boundary head's
    inputs plus requested spans; batch, words, queries and spans are dynamic."""

    _graph_outputs = {
        "span_logits": {0: "batch_size", 1: "num_queries", 2: "num_spans"},
        "span_outside_pool": {0: "batch_size", 1: "num_queries", 2: "num_spans"},
    }
    CANDIDATE_AXES: Dict[str, int] = {}

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        return {
            **super().inputs,
            "spans": {0: "batch_size", 1: "num_queries", 2: "num_spans"},
            "span_mask": {0: "batch_size", 1: "num_queries", 2: "num_spans"},
        }


class GLiNER2RecordHeadOnnxConfig(GLiNER2BoundaryHeadOnnxConfig):
    """gliner2's record head (structured JSON on GLiNER2.5): the boundary head's inputs plus the
    record groups; batch, words, queries, groups and fields are dynamic, the instance and pool
    axes are fixed (exporters/modeling.py)."""

    _graph_outputs = {
        "object_logits": {0: "batch_size", 1: "num_groups"},
        "assign_logits": {0: "batch_size", 1: "num_groups", 3: "num_fields"},
        "instance_mask": {0: "batch_size", 1: "num_groups"},
        "field_membership": {0: "batch_size", 1: "num_groups", 2: "num_fields"},
    }
    CANDIDATE_AXES: Dict[str, int] = {}

    @property
    def inputs(self) -> Dict[str, Dict[int, str]]:
        # modes: 0 natural, 1 latent, 2 anchorless, -1 padding; anchor_fields: -1 without an anchor.
        return {
            **super().inputs,
            "field_queries": {0: "batch_size", 1: "num_groups", 2: "num_fields"},
            "field_mask": {0: "batch_size", 1: "num_groups", 2: "num_fields"},
            "modes": {0: "batch_size", 1: "num_groups"},
            "anchor_fields": {0: "batch_size", 1: "num_groups"},
            "group_mask": {0: "batch_size", 1: "num_groups"},
        }


ONNX_CONFIG_CLASSES = {
    "encoder": GLiNER2EncoderOnnxConfig,
    "count_embed": GLiNER2CountEmbedOnnxConfig,
    "classifier": GLiNER2ClassifierOnnxConfig,
    "span_scorer": GLiNER2SpanScorerOnnxConfig,
    "boundary_head": GLiNER2BoundaryHeadOnnxConfig,
    "relation_scorer": GLiNER2RelationScorerOnnxConfig,
    "explicit_spans": GLiNER2ExplicitSpansOnnxConfig,
    "record_head": GLiNER2RecordHeadOnnxConfig,
}


def get_submodels_and_onnx_configs(model, task: str, float_dtype: str = "fp32", preprocessors: Optional[list] = None):
    """What Optimum exports for a gliner2 model (span or boundary): (first config, {graph: (module, OnnxConfig)})."""
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
