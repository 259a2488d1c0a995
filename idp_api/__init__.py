"""HTTP API and review page of the IDP platform (`idp api serve`, `make run` on 127.0.0.1:8000).

A long-running service beside the Dagster webserver, one module per job:

* ``config``          - every setting, read from the environment (README "HTTP API and review page");
* ``security``        - API keys (hashed at rest), JWT bearer tokens, roles, the review-page session;
* ``deps``            - the FastAPI dependencies that check a request's credential and role;
* ``limits``          - upload size / media type / rate limits;
* ``services``        - the resources of ``idp_assets.settings.build_resources`` opened once, kept warm;
* ``db``              - the API's SQLite database; ``jobs`` (run queue), ``catalog`` (document list) and
  ``reviews`` (corrections) each own a table in it;
* ``worker``          - background threads materializing queued documents on the Dagster instance;
* ``intake``          - uploads stored exactly as the sensors store them;
* ``status``          - per-stage status of a document from the Dagster instance;
* ``review_actions``  - a reviewer's decision: a correction, and the supplier master's review loop;
* ``pages``, ``boxes`` - page images and the boxes of the fields' printed text, for the review page;
* ``neighbourhood``   - a document's graph neighbourhood and similar documents;
* ``telemetry``       - Prometheus metrics and the access log;
* ``models``          - the typed responses; ``routes/`` - the routers; ``app`` puts them together;
  ``serve`` runs it with uvicorn.
"""
