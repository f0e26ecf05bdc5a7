//! The snapshot part of the OpenAPI document: its routes, its schema, and `fromSnapshot` on a
//! create. Added to the document by [`super::document`].

use serde_json::{json, Value};

use super::{engine_errors, error_ref, id_param, merge, or_null, session_errors};

fn snapshot_ref() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Snapshot"}}})
}

fn ref_param() -> Value {
    // A blank reference (only whitespace) is INVALID_ARGUMENT, not a reference at all.
    json!({"name": "ref", "in": "path", "required": true, "schema": {"type": "string", "pattern": "\\S"},
           "description": "a snapshot's id or name (not blank)", "example": "snap-0123456789ab"})
}

/// A snapshot name: what the server accepts (1-64 of A-Z a-z 0-9 . _ -, not `snap-...`).
fn name_schema() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "not": {"pattern": "^snap-"}})
}

/// The answers of a route that names a snapshot.
fn snapshot_errors() -> Value {
    json!({
        "401": {"description": "missing or wrong bearer token", "content": error_ref()},
        "404": {"description": "NOT_FOUND: no snapshot has this id or name", "content": error_ref()},
        "400": {"description": "INVALID_ARGUMENT: a name that matches more than one snapshot", "content": error_ref()}
    })
}

/// Adds the snapshot routes and schemas to `doc`.
pub(super) fn add(doc: &mut Value) {
    let paths = json!({
        "/assets/snapshots.js": {"get": {
            "operationId": "dashboardSnapshotsScript", "summary": "Dashboard script: the snapshot panel", "security": [],
            "responses": {"200": {"description": "JavaScript module", "content": {"text/javascript": {}}}}
        }},
        "/api/sandbox/{id}/snapshot": {
            "parameters": [id_param()],
            "post": {
                "operationId": "snapshotSession",
                "summary": "Save the sandbox's files, env and workdir as a snapshot (secret env values are kept by name only)",
                "requestBody": {"required": false, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"name": or_null(name_schema())}
                }}}},
                "responses": merge(merge(json!({
                    "201": {"description": "the snapshot", "content": snapshot_ref()},
                    "400": {"description": "a bad or taken name", "content": error_ref()},
                    "409": {"description": "the session has ended", "content": error_ref()}
                }), session_errors()), engine_errors())
            }
        },
        "/api/snapshot": {
            "get": {
                "operationId": "listSnapshots", "summary": "Every snapshot, oldest first",
                "responses": merge(json!({
                    "200": {"description": "snapshots", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["snapshots"],
                        "properties": {"snapshots": {"type": "array", "items": {"$ref": "#/components/schemas/Snapshot"}}}
                    }}}},
                    "401": {"description": "missing or wrong bearer token", "content": error_ref()}
                }), engine_errors())
            }
        },
        "/api/snapshot/{ref}": {
            "parameters": [ref_param()],
            "get": {
                "operationId": "getSnapshot", "summary": "One snapshot",
                "responses": merge(merge(json!({"200": {"description": "the snapshot", "content": snapshot_ref()}}), snapshot_errors()), engine_errors())
            },
            "delete": {
                "operationId": "deleteSnapshot",
                "summary": "Delete a snapshot and its data (sandboxes made from it keep running)",
                "responses": merge(merge(json!({"200": {"description": "the deleted snapshot", "content": snapshot_ref()}}), snapshot_errors()), engine_errors())
            }
        }
    });
    let nullable_string = json!({"type": ["string", "null"]});
    let schema = json!({
        "type": "object",
        "required": ["id", "name", "backend", "createdAt", "size", "workdir", "env", "secretEnv", "image", "source", "engineRef"],
        "properties": {
            "id": {"type": "string", "pattern": "^snap-[0-9a-f]{12}$"},
            "name": nullable_string.clone(),
            "backend": {"enum": ["dagger", "docker", "local"]},
            "createdAt": {"type": "string", "format": "date-time"},
            "size": {"type": ["integer", "null"], "minimum": 0, "description": "bytes, where the engine says cheaply"},
            "workdir": {"type": "string"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "without secret values"},
            "secretEnv": {"type": "array", "items": {"type": "string"}, "description": "names whose values were not kept"},
            "image": nullable_string,
            "source": {"type": "string", "description": "the sandbox it was taken from"},
            "engineRef": {"type": "string", "description": "docker image reference, local directory, or `dagger`"}
        }
    });
    if let (Some(p), Value::Object(add)) = (doc["paths"].as_object_mut(), paths) {
        p.extend(add);
    }
    doc["components"]["schemas"]["Snapshot"] = schema;
    let create = &mut doc["components"]["schemas"]["CreateRequest"];
    create["properties"]["fromSnapshot"] = json!({
        "anyOf": [{"type": "string", "minLength": 1, "pattern": "\\S"}, {"type": "null"}],
        "description": "a snapshot's id or name to start from instead of an image (then leave out image and template); 404 when none has it"
    });
    if let Some(all) = create["allOf"].as_array_mut() {
        all.push(json!({"if": {"required": ["fromSnapshot"], "properties": {"fromSnapshot": {"type": "string"}}},
                        "then": {"properties": {"image": {"type": "null"}, "template": {"type": "null"}}}}));
    }
    let created = &mut doc["paths"]["/api/sandbox"]["post"]["responses"];
    created["404"] = json!({"description": "NOT_FOUND: no snapshot has the fromSnapshot id or name; nothing was created", "content": error_ref()});
}
