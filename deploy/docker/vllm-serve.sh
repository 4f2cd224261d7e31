#!/bin/sh
# Entrypoint of the gpu image: serve the merged checkpoint baked in at build time.
#
# /opt/bodytalk/vllm-command is what `python -m bodytalk.model.llm.vllm CKPT` printed while building:
# the OpenAI server on the merged weights, its served name (the client checks it), --enable-prompt-embeds,
# the dtype and --max-logprobs. This script runs it with the image's python3, binds the container's
# interface instead of loopback (the compose network or a NetworkPolicy keeps port 8000 private), and
# requires an API key: prompt embeddings steer the model, so only our own server may send them.
# The container's arguments follow (--max-model-len, --tensor-parallel-size, ...); argparse keeps the
# last value of a repeated flag, so they override the printed ones.
set -eu
: "${VLLM_API_KEY:?set VLLM_API_KEY: the vLLM port takes prompt embeddings and must not be open}"
printed=$(cat "${BODYTALK_VLLM_COMMAND:-/opt/bodytalk/vllm-command}")
# shellcheck disable=SC2086  # the printed command is a plain word list (paths without spaces)
set -- ${printed#python } --host "${BODYTALK_VLLM_HOST:-0.0.0.0}" --port "${BODYTALK_VLLM_PORT:-8000}" --api-key "$VLLM_API_KEY" "$@"
exec python3 "$@"
