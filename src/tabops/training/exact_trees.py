"""An ONNX graph of a histogram gradient boosting pipeline that keeps float64 split thresholds.

skl2onnx writes tree thresholds as float32, but scikit-learn's histogram gradient boosting
compares float64 inputs with float64 thresholds: a value between the two roundings goes the
other way, and probabilities moved by more than 0.1 were measured on wide-ranged features.
This graph feeds double inputs to ``TreeEnsembleRegressor`` (ai.onnx.ml opset 3) with its
thresholds and leaf values as double tensors, so every split is decided exactly as in
scikit-learn; only the summed score leaves the ensemble as float32 (error ~1e-7).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline


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
        target_opset={"": 17, "ai.onnx.ml": 3},
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
