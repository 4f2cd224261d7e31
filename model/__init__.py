"""The model: skeleton windows in, a label and a grounded explanation out.

Rooms (each a folder; only ``serving/`` touches the bus, so the rest imports in a notebook):
  skeleton/   numpy on one window of unified joints: encoder features (features.py), movement
              descriptors in physical units and their words (descriptors.py, descriptor_bands.py,
              spectral.py), micro-gestures (microgestures.py: vocabulary and results; mg_rules.py:
              geometric detector; mg_learned.py: a head on the encoder's tokens)
  llm/        the language model: backend.py (the LLMBackend protocol both backends implement),
              hf.py (any Hugging Face causal LM + LoRA), vllm.py + vllm_client.py (the same model
              served by vLLM), prompt.py (skeleton tokens spliced into the chat template),
              label_trie.py (label scoring), greedy.py (streamed decoding), int8_copies.py (CPU
              speed), weights.py (``bodytalk models pull``), hf_conventions.py
  text/       explanations in words: evidence_text.py (the prompt's evidence line, training
              targets), claim_terms.py (movement words and the bands that make them true),
              grounding.py (every claim checked against the measured descriptors)
  serving/    the processes: tokenize.py (windows -> prompt work), server.py (``bodytalk serve``),
              worker.py (``bodytalk worker``), explainer.py (the server's explanations),
              hysteresis.py (stable labels), analyze.py (``bodytalk analyze``), inspect.py
              (``bodytalk model info``)
Here: encoder.py (ST-GCN -> spatio-temporal + semantic tokens + fast head), projector.py (tokens ->
the LLM's embeddings), inference.py (``EmotionModel``: one checkpoint behind one interface),
checkpoint.py (self-contained checkpoint folders), registry.py (which checkpoint a command uses),
constants.py (label set, placeholder, default base LLM).
"""
