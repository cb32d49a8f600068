"""Piper's graph with 2-D convolutions (tts/piper_graph.py): the same numbers, fewer reshapes, cached once."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from avatarchat.tts.piper import PiperTTS, bundled_voices, load_voice
from avatarchat.tts.piper_graph import fast_model_file, two_d_convolutions


def _session(model: onnx.ModelProto | Path) -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return onnxruntime.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])


def _decoder_like() -> onnx.ModelProto:
    """A small HiFi-GAN-shaped graph: upsampling ConvTranspose, a residual block (LeakyRelu -> dilated Conv ->
    Add), a scalar Div, a ReduceMean that needs the 3-D tensor, and a grouped Conv with no bias, then Tanh."""
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("up_w", w(8, 6, 8)), ("up_b", w(6)), ("c1_w", w(6, 6, 3)), ("c1_b", w(6)), ("g_w", w(6, 3, 5)),
        ("two", np.array(2.0, np.float32))]]
    nodes = [
        helper.make_node("ConvTranspose", ["x", "up_w", "up_b"], ["up"], kernel_shape=[8], strides=[4], pads=[2, 2]),
        helper.make_node("LeakyRelu", ["up"], ["act"], alpha=0.1),
        helper.make_node("Conv", ["act", "c1_w", "c1_b"], ["c1"], kernel_shape=[3], dilations=[2], pads=[2, 2]),
        helper.make_node("Add", ["c1", "up"], ["res"]),
        helper.make_node("Div", ["res", "two"], ["half"]),
        helper.make_node("ReduceMean", ["half"], ["mean"], axes=[2], keepdims=1),
        helper.make_node("Conv", ["half", "g_w"], ["g"], kernel_shape=[5], pads=[2, 2], group=2),
        helper.make_node("Tanh", ["g"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "decoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, None]),
                               helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 6, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    return model


def test_rewritten_graph_computes_the_same_with_2d_convolutions_end_to_end() -> None:
    model = _decoder_like()
    x = np.random.default_rng(1).standard_normal((1, 8, 50)).astype(np.float32)
    expected = _session(model).run(None, {"x": x})
    rewritten = _decoder_like()
    assert two_d_convolutions(rewritten) == 3
    onnx.checker.check_model(rewritten)
    got = _session(rewritten).run(None, {"x": x})
    assert got[0].shape == expected[0].shape == (1, 6, 200)
    assert got[1].shape == expected[1].shape == (1, 6, 1)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
    ops = Counter(n.op_type for n in rewritten.graph.node)
    weights = {i.name: i for i in rewritten.graph.initializer}
    assert all(len(weights[n.input[1]].dims) == 4 for n in rewritten.graph.node if n.op_type.startswith("Conv"))
    # The unit axis goes in once, at x, and comes out only where a 3-D tensor is read: the ReduceMean's input and
    # the output y. The activation, the residual Add and the Div run on the 4-D tensors.
    assert ops["Unsqueeze"] == 1
    assert ops["Squeeze"] == 2


def test_graph_without_1d_convolutions_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    assert two_d_convolutions(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Relu"]
    source = tmp_path / "plain.onnx"
    onnx.save(model, str(source))
    with caplog.at_level(logging.WARNING):
        assert fast_model_file(source, tmp_path / "cache") == source
    assert "could not rewrite plain.onnx" in caplog.text
    assert not list(tmp_path.glob("cache/*.onnx"))


def test_bundled_voice_says_the_same_from_its_cached_2d_graph(tmp_path: Path) -> None:
    """The shipped voice and its rewritten copy make the same samples (noise off, so both are deterministic);
    the copy is made once and reused."""
    source = bundled_voices()["en_US-joe-medium"]
    fast = fast_model_file(source, tmp_path)
    assert fast.parent == tmp_path and fast != source
    made = fast.stat().st_mtime_ns
    assert fast_model_file(source, tmp_path) == fast and fast.stat().st_mtime_ns == made  # cached, not remade
    voice = load_voice(source, 1)
    ids = [i for p in voice.phonemize("The sky looks clear this afternoon, doesn't it?")
           for i in voice.phonemes_to_ids(p)]
    feeds = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
             "scales": np.array([0.0, 1.0, 0.0], np.float32)}
    shipped = _session(source).run(None, feeds)[0]
    ours = _session(fast).run(None, feeds)[0]
    assert shipped.shape == ours.shape and shipped.size > 22050  # over a second of audio
    assert np.abs(ours - shipped).max() < 1e-4
    assert np.abs(shipped).max() > 0.1  # real speech, not silence compared with silence

    tts = PiperTTS(cache_dir=tmp_path)
    speech = tts.synthesize_sync("Hello there.")
    assert speech.duration_s > 0.4
    assert tts._graphs["en_US-joe-medium"] == fast  # the server's sessions run the cached copy


def test_a_tensor_a_subgraph_may_read_is_made_3d_before_it() -> None:
    """An ``If`` reads outer tensors from inside its branches, where the rewrite cannot see: every tensor that
    exists only as its 4-D twin is squeezed back before such a node."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 4, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(True), "yes")]
    branch = helper.make_graph([helper.make_node("Tanh", ["c"], ["b"])], "branch", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4, None])])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("If", ["yes"], ["y"], then_branch=branch, else_branch=branch)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    x = rng.standard_normal((1, 4, 20)).astype(np.float32)
    expected = _session(model).run(None, {"x": x})[0]
    assert two_d_convolutions(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Unsqueeze", "Conv", "Squeeze", "If"]
    np.testing.assert_allclose(_session(model).run(None, {"x": x})[0], expected, atol=1e-5)
