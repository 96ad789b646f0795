"""gunicorn settings of the baseline (``LAST_CALL_DISABLED=1 python
run.py``): plain gunicorn, which only announces where it serves, as
last_call.gunicorn does, so that the harness finds the port."""


def when_ready(server):
    for listener in server.LISTENERS:
        server.log.info("serving on %s", listener)
