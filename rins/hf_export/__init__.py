"""Custom ``transformers`` code shipped inside folders written by :func:`rins.hf.export`.

``configuration_rins.py`` and ``modeling_rins.py`` are copied verbatim next to the exported weights,
together with ``rins/plan.py`` renamed ``rins_plan.py`` (the one signature compiler, stdlib only), so
that ``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`` works without ``rins``
installed. These files are never imported from inside the ``rins`` package itself.
"""
