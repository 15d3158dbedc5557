"""The composition root: the `optiboard` command and the embedded `up`.

The only package that imports both the API (`backend`) and the worker (`worker`).
"""
