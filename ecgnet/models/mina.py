"""MINA: multilevel knowledge-guided attention for ECG classification (Hong et al., IJCAI 2019).

Design (all computed inside the model from the raw ``(T, 1)`` window):

1. A fixed FIR filter bank (:class:`~ecgnet.knowledge.BandFilterBank`) splits the
   window into K frequency channels, by default K = 3: baseline wander
   (< 0.7 Hz), ECG band (0.5-40 Hz) and high-frequency noise (> 40 Hz);
   ``channels=("raw", "baseline", "ecg", "noise")`` adds the unfiltered window as
   a fourth. The model does not assume the input was band-pass filtered.
2. Knowledge: beat (``|first difference|`` within each segment), rhythm
   (standard deviation of each segment) and frequency (log band power of each
   channel).
3. Each channel is cut into M segments of L ≈ ``fs / segments_per_second``
   samples (a multiple of the conv stride; zero-padded at the end when T is not
   a multiple of L). **Beat level**: the K channels are folded into the batch
   axis and ONE stack of convolutions (the strided ``beat_conv`` and
   ``beat_depth - 1`` context convolutions) runs over every channel's whole
   signal; its output is cut into the M segments of P positions, and attention
   over the positions of each segment, its score fed with the beat knowledge
   averaged over each position's receptive field, gives one vector per segment
   (``beat_attention``, weights ``(B, K, M, P)``).
4. **Rhythm level**: one Bidirectional LSTM over the M segment vectors of all
   ``B*K`` channel sequences, then attention over segments guided by the rhythm
   knowledge (``rhythm_attention``, weights ``(B, K, M)``).
5. **Frequency level**: a learned channel embedding is added to the K channel
   vectors, then attention across channels guided by the band power fuses them
   (``frequency_attention``, weights ``(B, K)``); dropout and the softmax output.

Every attention weight set sums to 1 over its axis; read them with
:func:`ecgnet.attention.attention_weights`.

Deviations from the paper:

* The paper trains K separate networks, one per channel. Here the conv, LSTM
  and beat/rhythm attentions share weights across channels (one batched
  computation); a learned channel embedding before the frequency attention lets
  it tell channels apart. This is several times cheaper on CPU.
* Three channels by default, not four: the raw window is (up to the filters'
  transition bands) the sum of the other three, and dropping it costs a quarter
  of the per-channel work. On CinC 2017 (one seed, validation records) three
  channels scored 0.944 ROC-AUC against 0.946 for four, at about 80 % of the
  inference cost.
* Smaller, for CPU speed (the goal: 1.5x the original code's ~500 windows/s
  training and ~2,100 inference at T = 3000, batch 128 on 2 cores): the paper
  convolves each 50-sample segment with 64 filters of kernel 32 (stride 1,
  'valid', 19 positions) and uses 32 BiLSTM units per direction; the defaults
  here are 105-sample segments (3 per second at 300 Hz), 24 filters, kernel 15,
  stride 15, 'same' padding (7 positions per segment) and 16 units per
  direction. All are hyperparameters. On CinC 2017 (one seed, validation
  records) these defaults scored 0.946 ROC-AUC against 0.953 for 50-sample
  segments with 32 filters at stride 10, at about two thirds of the inference
  cost (RESULTS.md, "Model throughput").
* The paper concatenates knowledge into a ``tanh`` attention score; this is kept
  for the rhythm and frequency levels (``v^T tanh(W h + U k + b)``), while the
  beat level, which scores every position of every segment, uses a linear score
  ``w^T h + u k + b`` by default (``beat_attention_units=0``). The beat knowledge
  is average-pooled over each conv position's receptive field instead of passed
  through a learned convolution.
* The frequency knowledge is the log mean power of each channel instead of a
  power spectral density.
* The paper convolves each segment on its own (one conv layer). Here the beat
  convolutions run over the continuous channel signal and are followed by two
  context convolutions, so a position's features see the neighbouring beats.
  Without them this implementation stayed near 0.6 window ROC-AUC on CinC 2017
  (a 5,000-window ablation where the plain CNN reached 0.90); with them it learns.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import keras
from keras import layers

from ecgnet.knowledge import (DEFAULT_BANDS, BandFilterBank, BeatKnowledge, FrequencyKnowledge,
                              RhythmKnowledge, RRKnowledge)
from ecgnet.layers import (AttentionPooling, ChannelEmbedding, FoldBatch, Segment, UnfoldBatch,
                           classifier_head, fuse_expert_features, n_segments)
from ecgnet.models.hybrid import FEATURES_INPUT, expert_feature_inputs
from ecgnet.rhythm import RR_INPUT
from pipelines.errors import ConfigError
from pipelines.modeling import l1_l2, register_model

BEAT_CONTEXT_KERNEL = 5


def _channel_segments(x: Any, segment_length: int) -> Any:
    """``(B, T, K) -> (B, K, M, L)``: every channel cut into segments."""
    segmented = Segment(segment_length, name="segment")(x)                           # (B, M, L, K)
    return layers.Permute((3, 1, 2), name="channel_segments")(segmented)


@register_model("mina", family="keras", modality="ecg")
def build_mina(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
               seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.2,
               segments_per_second: float = 3.0, filters: int = 24, kernel_size: int = 15,
               conv_stride: int = 15, units: int = 16, attention_units: int = 16,
               beat_attention_units: int = 0, beat_depth: int = 3, unroll: bool = True,
               channels: Sequence[str] = ("baseline", "ecg", "noise")) -> keras.Model:
    """Build MINA for a raw ``(T, 1)`` ECG window sampled at ``fs`` Hz.

    Args:
        input_shape: ``(T, 1)``.
        n_classes: Number of output classes.
        fs: Sampling rate in Hz (required: it sets the filter bank and segment length).
        seed: Random seed of the weight initialisation.
        l1: L1 strength on conv, LSTM, attention and dense kernels.
        l2: L2 strength on the same kernels.
        dropout: Dropout rate before the output layer.
        segments_per_second: Segments per second; segment length L = fs / this, rounded
            to a multiple of ``conv_stride``.
        filters: Conv1D filters of the beat level.
        kernel_size: Conv1D kernel length (samples).
        conv_stride: Conv1D stride; a segment has ceil(L / conv_stride) positions.
        units: LSTM units per direction of the rhythm level.
        attention_units: Hidden width of the rhythm and frequency attention scores.
        beat_attention_units: Hidden width of the beat attention score; 0 (default) for a
            linear score, as it runs at every conv position of every segment.
        beat_depth: Convolutions of the beat level: the strided ``beat_conv`` plus
            ``beat_depth - 1`` more (kernel 5) that widen each position's view to neighbouring beats.
        unroll: Unroll the rhythm LSTM over the (fixed) M segments: faster on CPU
            (about 25 % in inference) at the cost of a larger graph.
        channels: Frequency channels, by name, from :data:`~ecgnet.knowledge.DEFAULT_BANDS`
            (raw, baseline, ecg, noise).

    Returns:
        An uncompiled functional model with output ``probs`` ``(B, n_classes)``.
    """
    return _build(**locals(), rr_knowledge=False, feature_units=0, feature_dropout=0.0)


def build_mina_rr(input_shape: tuple[int, ...], n_classes: int, **params: Any) -> keras.Model:
    """Build MINA whose rhythm level also knows the RR intervals of the detected R peaks.

    Same hyperparameters as :func:`build_mina`. The ``rr_intervals`` side input
    (:mod:`ecgnet.rhythm`, computed by the engine in training and by ``biomed
    predict`` from the raw record) gives every segment its mean RR interval, its
    deviation from the window's mean and its change from the previous segment
    (:class:`~ecgnet.knowledge.RRKnowledge`); these join the segment vectors fed to
    the rhythm BiLSTM and the knowledge guiding the rhythm attention. MINA's own
    rhythm knowledge (a segment's standard deviation) does not see beat timing,
    which is what separates atrial fibrillation from other arrhythmias.

    Returns:
        An uncompiled functional model with inputs ``ecg`` ``(B, T, 1)`` and
        ``rr_intervals`` ``(B, T, 1)`` and output ``probs`` ``(B, n_classes)``.
    """
    return _build(input_shape, n_classes, rr_knowledge=True, feature_units=0, feature_dropout=0.0, **params)


build_mina_rr.__signature__ = inspect.signature(build_mina, eval_str=True)   # the registry reads defaults and types here
register_model("mina_rr", family="keras", modality="ecg", side_inputs=(RR_INPUT,))(build_mina_rr)


def build_mina_hybrid(input_shape: tuple[int, ...], n_classes: int, *, feature_units: int = 64,
                      feature_dropout: float = 0.2, **params: Any) -> keras.Model:
    """Build ``mina_rr`` fused with the window's expert features, as ``hybrid_cnn`` fuses its CNN.

    The frequency level's output and the 41 expert features (``expert_features`` side
    input, :mod:`ecgnet.features`) meet in :func:`~ecgnet.layers.fuse_expert_features`
    before the softmax: the attention network reads the waveform and the RR intervals,
    the dense branch the forest's knowledge. Same hyperparameters as :func:`build_mina`,
    plus ``feature_units`` (width of the feature branch and of the fused layer) and
    ``feature_dropout`` (dropout after the feature branch).

    Returns:
        An uncompiled functional model with inputs ``ecg`` ``(B, T, 1)``, ``rr_intervals``
        ``(B, T, 1)`` and ``expert_features`` ``(B, 41)`` and output ``probs`` ``(B, n_classes)``.
    """
    if feature_units < 1:
        raise ConfigError(f"model 'mina_hybrid': feature_units must be a positive integer, got {feature_units}")
    return _build(input_shape, n_classes, rr_knowledge=True, feature_units=feature_units,
                  feature_dropout=feature_dropout, **params)


_FEATURE_PARAMETERS = [p for p in inspect.signature(build_mina_hybrid, eval_str=True).parameters.values()
                       if p.name in ("feature_units", "feature_dropout")]
build_mina_hybrid.__signature__ = inspect.Signature(      # the registry reads mina's defaults and the two above
    list(inspect.signature(build_mina, eval_str=True).parameters.values()) + _FEATURE_PARAMETERS)
register_model("mina_hybrid", family="keras", modality="ecg",
               side_inputs=(RR_INPUT, FEATURES_INPUT))(build_mina_hybrid)


def _build(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None, seed: int, l1: float,
           l2: float, dropout: float, segments_per_second: float, filters: int, kernel_size: int,
           conv_stride: int, units: int, attention_units: int, beat_attention_units: int,
           beat_depth: int, unroll: bool, channels: Sequence[str], rr_knowledge: bool,
           feature_units: int, feature_dropout: float) -> keras.Model:
    """The MINA graph (see :func:`build_mina`), with RR knowledge at the rhythm level if asked and
    fused with the expert features when ``feature_units`` > 0."""
    name = "mina_hybrid" if feature_units else "mina_rr" if rr_knowledge else "mina"
    if not fs:
        raise ConfigError(f"model {name!r} needs the sampling rate fs")
    keras.utils.set_random_seed(seed)
    # A whole number of conv positions per segment: L is a multiple of the conv stride.
    segment_length = conv_stride * max(1, round(fs / segments_per_second / conv_stride))
    known = {band[0]: band for band in DEFAULT_BANDS}
    unknown = [name for name in channels if name not in known]
    if unknown or not channels:
        raise ConfigError(f"model {name!r}: channels {list(channels)} must be one or more of {list(known)}")
    bands = [known[name] for name in channels]
    n_channels = len(bands)
    segments = n_segments(input_shape[0], segment_length)
    reg = l1_l2(l1, l2)

    ecg = keras.Input(shape=input_shape, name="ecg")
    filtered = BandFilterBank(fs, bands, name="filter_bank")(ecg)                    # (B, T, K)
    frequency_knowledge = FrequencyKnowledge(name="frequency_knowledge")(filtered)   # (B, K, 1)
    signal = _channel_segments(filtered, segment_length)                             # (B, K, M, L)
    rhythm_knowledge = RhythmKnowledge(name="rhythm_knowledge")(signal)              # (B, K, M, 1)

    # Beat level: convolutions over each channel's whole (end-padded) signal, the K channels
    # folded into the batch (one computation), then attention over the P positions of each segment.
    positions = segment_length // conv_stride
    x = FoldBatch(1, name="fold_channel_signals")(
        layers.Reshape((n_channels, segments * segment_length, 1), name="channel_signals")(signal))
    k = BeatKnowledge(name="beat_knowledge")(x)                                      # (BK, M*L, 1)
    x = layers.Conv1D(filters, kernel_size, strides=conv_stride, padding="same", activation="relu",
                      kernel_regularizer=reg, name="beat_conv")(x)                   # (BK, M*P, F)
    for depth in range(1, beat_depth):
        x = layers.Conv1D(filters, BEAT_CONTEXT_KERNEL, padding="same", activation="relu",
                          kernel_regularizer=reg, name=f"beat_conv_{depth}")(x)
    k = layers.AveragePooling1D(kernel_size, strides=conv_stride, padding="same",
                                name="beat_knowledge_pool")(k)                       # (BK, M*P, 1)
    unfold = (n_channels, segments, positions)
    x, _ = AttentionPooling(beat_attention_units, kernel_regularizer=reg, name="beat_attention")(
        [layers.Reshape((*unfold, filters), name="beat_segments")(UnfoldBatch((n_channels,))(x)),
         layers.Reshape((*unfold, 1), name="beat_knowledge_segments")(
             UnfoldBatch((n_channels,), name="unfold_beat_knowledge")(k))])            # (B, K, M, F)

    # Rhythm level: one BiLSTM over the M segments of all B*K channel sequences.
    inputs: Any = ecg
    if rr_knowledge:
        rr = keras.Input(shape=input_shape, name=RR_INPUT)
        inputs = {"ecg": ecg, RR_INPUT: rr}
        rr_segments = RRKnowledge(n_channels, name="rr_knowledge")(
            Segment(segment_length, name="rr_segments")(rr))                         # (B, K, M, 3)
        x = layers.Concatenate(name="beats_and_rr")([x, rr_segments])
        rhythm_knowledge = layers.Concatenate(name="rhythm_and_rr")([rhythm_knowledge, rr_segments])
    x = FoldBatch(1, name="fold_channels")(x)                                        # (BK, M, F)
    x = layers.Bidirectional(layers.LSTM(units, return_sequences=True, kernel_regularizer=reg,
                                         unroll=unroll), name="rhythm_lstm")(x)
    x = UnfoldBatch((n_channels,), name="unfold_channels")(x)                          # (B, K, M, 2U)
    x, _ = AttentionPooling(attention_units, kernel_regularizer=reg, name="rhythm_attention")(
        [x, rhythm_knowledge])                                                        # (B, K, 2U)

    # Frequency level: fuse the K channel vectors.
    x = ChannelEmbedding(name="channel_embedding")(x)
    x, _ = AttentionPooling(attention_units, kernel_regularizer=reg, name="frequency_attention")(
        [x, frequency_knowledge])                                                     # (B, 2U)
    if feature_units:
        features, joined = expert_feature_inputs((FEATURES_INPUT,))
        inputs = {**inputs, **features}
        x = fuse_expert_features(x, joined, units=feature_units, dropout=feature_dropout, regularizer=reg)
    return keras.Model(inputs, classifier_head(x, n_classes, dropout=dropout, regularizer=reg),
                       name=name)
