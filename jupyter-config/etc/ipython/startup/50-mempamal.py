# Installed with mempamal: every IPython kernel of this environment gets the
# %mempamal / %%mempamal magics without %load_ext.
def _mempamal_autoload():
    try:
        get_ipython().extension_manager.load_extension("mempamal")
    except Exception as exc:  # never break a kernel's start-up
        import warnings

        warnings.warn(f"mempamal: could not load the IPython extension ({exc!r})")


_mempamal_autoload()
del _mempamal_autoload
