"""The emulator's routes, one module per resource.

- :mod:`.models`: ``/v1/models`` (create, retrieve, update, list, delete, tags, get-bulk);
- :mod:`.assets`: ``/v1/assets`` and ``/v1/models/{id}/training-images`` (and pairs);
- :mod:`.training`: ``/v1/models/{id}/train`` (trigger, dry run, cancel), jobs, the dataset score;
- :mod:`.webhooks`: ``/v1/projects/{projectId}/webhook-endpoints`` (create, list, retrieve, delete, events);
- :mod:`.admin`: ``/_emulator`` (health, request log, faults, limits, clock, files, OpenAPI).

Routes reach the emulator through :func:`scenario_emulator.wire.emulator_of`, never
through the app module.
"""
