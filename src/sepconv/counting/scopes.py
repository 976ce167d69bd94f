"""Module scopes: while a model is traced, each submodule runs inside ``jax.named_scope(<its path>)``,
so that every equation's name stack says which layer it belongs to (``features.3.conv_dw.conv``)."""

from __future__ import annotations

import contextlib

import jax

__all__ = ["module_scopes"]


_PATH_TAG = "_sepconv_counter_path"


@contextlib.contextmanager
def module_scopes(root):
    """While tracing, run every submodule of ``root`` inside ``jax.named_scope(<its path>)``, so each
    equation's name stack says which layer it belongs to (``features.3.conv_dw.conv``)."""
    from flax import nnx

    paths, classes, tagged = {}, set(), []
    for path, node in nnx.iter_graph(root):  # one walk of the graph (a large model has thousands of nodes)
        if isinstance(node, nnx.Module):
            classes.add(type(node))
            if path:
                paths[id(node)] = ".".join(map(str, path))
                # also as a static attribute, which copies of the module made by ``nnx.remat``,
                # ``nnx.scan`` or ``nnx.vmap`` (a split and a merge) keep
                vars(node)[_PATH_TAG] = paths[id(node)]
                tagged.append(node)
    patched = []
    for cls in classes:
        if not any("__call__" in c.__dict__ for c in cls.__mro__ if c is not object):
            continue  # not callable (a container such as nnx.List)
        own = cls.__dict__.get("__call__")
        original = cls.__call__

        def call(self, *args, __original=original, **kwargs):
            path = paths.get(id(self)) or vars(self).get(_PATH_TAG)
            if path is None:
                return __original(self, *args, **kwargs)
            with jax.named_scope(path):
                return __original(self, *args, **kwargs)

        cls.__call__ = call
        patched.append((cls, own))
    try:
        yield
    finally:
        for node in tagged:
            vars(node).pop(_PATH_TAG, None)
        for cls, own in patched:
            if own is None:
                del cls.__call__
            else:
                cls.__call__ = own
