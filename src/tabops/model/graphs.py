"""ONNX graphs of fitted pipelines: skl2onnx's, and the ones tabops writes to stay exact.

Histogram gradient boosting: skl2onnx writes tree thresholds as float32, but scikit-learn
compares float64 inputs with float64 thresholds: a value between the two roundings goes the
other way, and probabilities moved by more than 0.1 were measured on wide-ranged features.
This graph feeds double inputs to ``TreeEnsembleRegressor`` (ai.onnx.ml opset 3) with its
thresholds and leaf values as double tensors, so every split is decided exactly as in
scikit-learn; only the summed score leaves the ensemble as float32 (error ~1e-7).

Soft voting: each member is converted on its own, the exact way for its kind (the graph
above for gradient boosting, skl2onnx in double for logistic regression, in single precision
for forests, which scikit-learn runs in single precision too), and their probabilities are
averaged in double precision with the voting weights.

LightGBM and XGBoost: skl2onnx converts them with onnxmltools' converters, registered the
first time such a model is converted (so importing tabops never imports either library). Their
trees run in single precision: the same splits as XGBoost, which compares in float32 itself;
LightGBM's thresholds are float64, so a value within a float32 rounding of one could split the
other way (the compile check would refuse such a graph). The ensemble's built-in logistic
computes a small probability as ``1 - sigmoid(|score|)`` in float32, which leaves ~6e-8 of
absolute precision: 0.6% of a probability of 1e-5, and more once sigmoid calibration takes its
logit. ``boosting_graph`` therefore sums the trees as a regressor and applies the sigmoid in
double precision.

Sigmoid calibration is appended to any of these graphs as its last nodes, so a calibrated
model is still one session call.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

OPSETS = {"": 17, "ai.onnx.ml": 3}
# Tree ensembles onnxruntime runs in single precision only (scikit-learn's forests are
# single precision too; gradient boosting gets the exact graph below instead).
SINGLE_PRECISION_TREES = frozenset(
    {
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "HistGradientBoostingClassifier",
        "LGBMClassifier",
        "XGBClassifier",
    }
)


def skl2onnx_graph(body: Pipeline, width: int, precision: str) -> bytes:
    """skl2onnx's graph of a pipeline on a ``features`` input, only its probabilities output."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor = DoubleTensorType if precision == "double" else FloatTensorType
    register_boosting_converter(type(body.steps[-1][1]).__name__)
    with warnings.catch_warnings():
        # skl2onnx 1.20 writes booleans into integer attributes of tree ensembles; protobuf 6
        # converts them with this warning (protobuf 7 refuses, hence the pin below 7).
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean")
        graph = convert_sklearn(
            body,
            initial_types=[("features", tensor([None, width]))],
            options={id(body): {"zipmap": False}},
            target_opset=OPSETS,
        )
    # Only the probabilities are read: without the label output, onnxruntime drops the
    # nodes computing it (12 -> 9 us a row for logistic regression).
    del graph.graph.output[:-1]
    data: bytes = graph.SerializeToString()
    return data


@cache
def register_boosting_converter(classifier: str) -> None:
    """Register onnxmltools' converter of ``LGBMClassifier`` or ``XGBClassifier`` with skl2onnx.

    Any other class name is left alone. Raises ImportError when onnxmltools is missing.
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    if classifier == "LGBMClassifier":
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        model, alias, converter = LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm
    elif classifier == "XGBClassifier":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier

        model, alias, converter = XGBClassifier, "XGBoostXGBClassifier", convert_xgboost
    else:
        return
    # skl2onnx's shape calculator, not onnxmltools' own: the latter accepts only onnxmltools'
    # tensor types and refuses the skl2onnx ones a pipeline's earlier steps produce.
    update_registered_converter(
        model,
        alias,
        calculate_linear_classifier_output_shapes,
        converter,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def boosting_graph(body: Pipeline, width: int) -> bytes:
    """ONNX bytes for ``preprocessing -> LGBMClassifier | XGBClassifier`` on double inputs.

    onnxmltools' graph in single precision, with its ``TreeEnsembleClassifier`` turned into
    the same trees summed by a ``TreeEnsembleRegressor`` and the sigmoid taken in double.

    Raises:
        ValueError: the graph does not hold one binary tree-ensemble classifier.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx.load_from_string(skl2onnx_graph(body, width, "float"))
    trees = [node for node in graph.graph.node if node.op_type == "TreeEnsembleClassifier"]
    if len(trees) != 1:
        raise ValueError("expected one TreeEnsembleClassifier in the converted graph")
    [tree] = trees
    attributes = {a.name: helper.get_attribute_value(a) for a in tree.attribute}
    if len(attributes.get("classlabels_int64s", [])) != 2 or set(attributes["class_ids"]) != {0}:
        raise ValueError("only a binary classifier with one score per tree leaf is supported")
    regressor = {
        name.replace("class_", "target_", 1): value
        for name, value in attributes.items()
        if not name.startswith("classlabels_") and name != "post_transform"
    }
    # Keep what computes the classifier's input; drop the classifier and all that reads it.
    dropped = set(tree.output)
    kept = []
    for node in graph.graph.node:
        if node is tree or dropped & set(node.input):
            dropped.update(node.output)
        else:
            kept.append(node)
    del graph.graph.node[:]
    graph.graph.node.extend(
        [
            helper.make_node("Cast", ["features_double"], ["features"], to=TensorProto.FLOAT),
            *kept,
            helper.make_node(
                "TreeEnsembleRegressor",
                [tree.input[0]],
                ["raw_score_f32"],
                domain="ai.onnx.ml",
                n_targets=1,
                aggregate_function="SUM",
                post_transform="NONE",
                **regressor,
            ),
            helper.make_node("Cast", ["raw_score_f32"], ["raw_score"], to=TensorProto.DOUBLE),
            helper.make_node("Sigmoid", ["raw_score"], ["positive"]),
            helper.make_node("Sub", ["one", "positive"], ["negative"]),
            helper.make_node("Concat", ["negative", "positive"], ["probabilities"], axis=1),
        ]
    )
    graph.graph.initializer.append(
        numpy_helper.from_array(np.ones((1, 1), dtype=np.float64), "one")
    )
    del graph.graph.input[:]
    graph.graph.input.append(
        helper.make_tensor_value_info("features_double", TensorProto.DOUBLE, [None, width])
    )
    del graph.graph.output[:]
    graph.graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])
    )
    onnx.checker.check_model(graph)
    data: bytes = graph.SerializeToString()
    return data


def soft_voting_graph(body: Pipeline, width: int) -> bytes:
    """ONNX bytes for ``preprocessing -> VotingClassifier(voting="soft")`` on double inputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    voting = body.steps[-1][1]
    prepare = body.steps[:-1]
    weights = voting.weights or [1.0] * len(voting.estimators_)
    combined = helper.make_graph(
        [],
        "soft_voting",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])],
    )
    opsets: dict[str, int] = {}
    weighted = []
    for index, member in enumerate(voting.estimators_):
        member_body = Pipeline([*prepare, ("model", member)])
        name = type(member).__name__
        if name == "HistGradientBoostingClassifier":
            graph, precision = hist_gradient_boosting_graph(member_body, width), "double"
        elif name in SINGLE_PRECISION_TREES:
            graph, precision = skl2onnx_graph(member_body, width, "float"), "float"
        else:
            graph, precision = skl2onnx_graph(member_body, width, "double"), "double"
        model = onnx.compose.add_prefix(onnx.load_from_string(graph), f"m{index}_")
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        source = model.graph.input[0].name
        element = TensorProto.DOUBLE if precision == "double" else TensorProto.FLOAT
        combined.node.append(helper.make_node("Cast", ["features"], [source], to=element))
        combined.node.extend(model.graph.node)
        combined.initializer.extend(model.graph.initializer)
        output = model.graph.output[-1].name
        share = f"m{index}_share"
        combined.node.append(
            helper.make_node("Cast", [output], [f"{share}_double"], to=TensorProto.DOUBLE)
        )
        combined.initializer.append(
            numpy_helper.from_array(np.asarray(float(weights[index])), f"{share}_weight")
        )
        combined.node.append(
            helper.make_node("Mul", [f"{share}_double", f"{share}_weight"], [share])
        )
        weighted.append(share)
    combined.initializer.append(
        numpy_helper.from_array(np.asarray(float(sum(weights))), "voting_total")
    )
    combined.node.append(helper.make_node("Sum", weighted, ["voting_sum"]))
    combined.node.append(helper.make_node("Div", ["voting_sum", "voting_total"], ["probabilities"]))
    model = helper.make_model(
        combined,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()],
    )
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def hist_gradient_boosting_graph(body: Pipeline, width: int) -> bytes:
    """ONNX bytes for ``preprocessing -> HistGradientBoostingClassifier`` on double inputs.

    Raises:
        ValueError: the classifier is not binary or uses native categorical splits.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    classifier = body.steps[-1][1]
    if classifier.n_trees_per_iteration_ != 1:
        raise ValueError("only binary histogram gradient boosting is supported")
    prepare = Pipeline(body.steps[:-1])
    graph = convert_sklearn(
        prepare,
        initial_types=[("features", DoubleTensorType([None, width]))],
        target_opset=OPSETS,
    )
    prepared = graph.graph.output[0].name
    attributes = _ensemble_attributes(classifier)
    nodes = [
        helper.make_node(
            "TreeEnsembleRegressor",
            [prepared],
            ["raw_score_f32"],
            domain="ai.onnx.ml",
            n_targets=1,
            aggregate_function="SUM",
            post_transform="NONE",
            base_values_as_tensor=numpy_helper.from_array(
                np.asarray(classifier._baseline_prediction, dtype=np.float64).reshape(-1),
                "base_values",
            ),
            nodes_values_as_tensor=numpy_helper.from_array(
                attributes.pop("thresholds"), "nodes_values"
            ),
            target_weights_as_tensor=numpy_helper.from_array(
                attributes.pop("weights"), "target_weights"
            ),
            **attributes,
        ),
        helper.make_node("Cast", ["raw_score_f32"], ["raw_score"], to=TensorProto.DOUBLE),
        helper.make_node("Sigmoid", ["raw_score"], ["positive"]),
        helper.make_node("Sub", ["one", "positive"], ["negative"]),
        helper.make_node("Concat", ["negative", "positive"], ["probabilities"], axis=1),
    ]
    for opset in graph.opset_import:  # the *_as_tensor attributes need ai.onnx.ml 3
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, 3)
    if not any(opset.domain == "ai.onnx.ml" for opset in graph.opset_import):
        graph.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    graph.graph.node.extend(nodes)
    graph.graph.initializer.append(
        numpy_helper.from_array(np.ones((1, 1), dtype=np.float64), "one")
    )
    del graph.graph.output[:]
    graph.graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])
    )
    onnx.checker.check_model(graph)
    data: bytes = graph.SerializeToString()
    return data


def _ensemble_attributes(classifier: Any) -> dict[str, Any]:
    """Flat node and leaf lists of every tree, in ``TreeEnsembleRegressor``'s layout."""
    tree_ids: list[int] = []
    node_ids: list[int] = []
    features: list[int] = []
    modes: list[str] = []
    true_ids: list[int] = []
    false_ids: list[int] = []
    missing_true: list[int] = []
    thresholds: list[float] = []
    leaf_trees: list[int] = []
    leaf_nodes: list[int] = []
    weights: list[float] = []
    for tree_id, (predictor,) in enumerate(classifier._predictors):
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("native categorical splits are not supported")
        for node_id, node in enumerate(nodes):
            tree_ids.append(tree_id)
            node_ids.append(node_id)
            if node["is_leaf"]:
                features.append(0)
                modes.append("LEAF")
                true_ids.append(0)
                false_ids.append(0)
                missing_true.append(0)
                thresholds.append(0.0)
                leaf_trees.append(tree_id)
                leaf_nodes.append(node_id)
                weights.append(float(node["value"]))
            else:
                features.append(int(node["feature_idx"]))
                modes.append("BRANCH_LEQ")
                true_ids.append(int(node["left"]))
                false_ids.append(int(node["right"]))
                missing_true.append(int(node["missing_go_to_left"]))
                thresholds.append(float(node["num_threshold"]))
    return {
        "nodes_treeids": tree_ids,
        "nodes_nodeids": node_ids,
        "nodes_featureids": features,
        "nodes_modes": modes,
        "nodes_truenodeids": true_ids,
        "nodes_falsenodeids": false_ids,
        "nodes_missing_value_tracks_true": missing_true,
        "thresholds": np.asarray(thresholds, dtype=np.float64),
        "target_ids": [0] * len(leaf_nodes),
        "target_nodeids": leaf_nodes,
        "target_treeids": leaf_trees,
        "weights": np.asarray(weights, dtype=np.float64),
    }


def append_sigmoid_calibration(
    graph: bytes, slope: float, intercept: float, epsilon: float, precision: str
) -> bytes:
    """The graph with sigmoid calibration of its positive probability as its last nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(graph)
    dtype = np.float64 if precision == "double" else np.float32
    element = TensorProto.DOUBLE if precision == "double" else TensorProto.FLOAT
    source = model.graph.output[-1].name
    constants = {
        "cal_column": np.asarray([1], dtype=np.int64),
        "cal_low": np.asarray(epsilon, dtype=dtype),
        "cal_high": np.asarray(1 - epsilon, dtype=dtype),
        "cal_one": np.asarray(1.0, dtype=dtype),
        "cal_slope": np.asarray(slope, dtype=dtype),
        "cal_intercept": np.asarray(intercept, dtype=dtype),
    }
    for name, value in constants.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    model.graph.node.extend(
        [
            helper.make_node("Gather", [source, "cal_column"], ["cal_raw"], axis=1),
            helper.make_node("Clip", ["cal_raw", "cal_low", "cal_high"], ["cal_clipped"]),
            helper.make_node("Sub", ["cal_one", "cal_clipped"], ["cal_rest"]),
            helper.make_node("Div", ["cal_clipped", "cal_rest"], ["cal_odds"]),
            helper.make_node("Log", ["cal_odds"], ["cal_logit"]),
            helper.make_node("Mul", ["cal_logit", "cal_slope"], ["cal_scaled"]),
            helper.make_node("Add", ["cal_scaled", "cal_intercept"], ["cal_score"]),
            helper.make_node("Sigmoid", ["cal_score"], ["cal_positive"]),
            helper.make_node("Sub", ["cal_one", "cal_positive"], ["cal_negative"]),
            helper.make_node(
                "Concat", ["cal_negative", "cal_positive"], ["calibrated_probabilities"], axis=1
            ),
        ]
    )
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("calibrated_probabilities", element, [None, 2])
    )
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
