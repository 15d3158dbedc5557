"""The run spec and its vocabulary, shared by the API and the worker.

Pure: imports pydantic, numpy and the standard library, nothing of ours and no TensorFlow, so both
halves (and the client's users) can depend on it. `spec` is the run spec (pydantic, extra=forbid);
`architectures` the built-in models' arithmetic (parameter counts without TensorFlow); `sweeps`
grid expansion; `npz` the uploaded-dataset validator; `vocabulary` the small shared vocabularies
(run statuses, export formats, the headline rule, chart axes, the id bound).
"""
