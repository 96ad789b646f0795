"""Runs workers_app.py under ``uvicorn --workers N`` (the supervisor
never imports the app; each worker does), for test_uvicorn_workers.py.

Run: python workers_asgi.py WORKERS (PORT from the environment).
"""

import os
import sys

import uvicorn

if __name__ == "__main__":
    port = int(os.environ["PORT"])
    # uvicorn's supervisor binds the port before it starts the workers.
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    uvicorn.run("workers_app:app", host="127.0.0.1", port=port, workers=int(sys.argv[1]), log_level="info")
