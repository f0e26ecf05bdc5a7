//! The OpenAPI 3.1 document served at `/openapi.json`, written out by hand from docs/rest-api.md;
//! a test holds it to the router's route table so neither can drift from the other, and
//! scripts/schemathesis.sh holds it to the server's answers: whatever the schemas allow, the server
//! accepts, and every status the server answers is listed.

use serde_json::{json, Value};

mod snapshots;

fn error_ref() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
}

fn session_ref() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}})
}

/// The standard error answers of a route that names a session.
fn session_errors() -> Value {
    json!({
        "401": {"description": "missing or wrong bearer token", "content": error_ref()},
        "404": {"description": "no such session", "content": error_ref()},
    })
}

/// The answers of a route that calls the engine.
fn engine_errors() -> Value {
    json!({
        "502": {"description": "ENGINE_ERROR: the engine refused or failed the operation (its message is quoted)", "content": error_ref()},
        "503": {"description": "ENGINE_UNAVAILABLE: the engine does not answer", "content": error_ref()},
    })
}

/// A string with at least one character that is not white space (what the server calls non-empty).
fn non_blank() -> Value {
    json!({"type": "string", "minLength": 1, "pattern": "\\S"})
}

/// A string without NUL bytes (they cannot reach a process, a path or an environment).
fn no_nul() -> Value {
    json!({"type": "string", "pattern": "^[^\\x00]*$"})
}

/// An absolute sandbox path.
fn absolute_path() -> Value {
    json!({"type": "string", "pattern": "^/[^\\x00]*$"})
}

/// Environment variables: names without `=` or NUL, values without NUL.
fn env_schema() -> Value {
    json!({"type": "object", "propertyNames": {"minLength": 1, "pattern": "^[^=\\x00]+$"}, "additionalProperties": no_nul()})
}

/// What a client does next with a session it created. `stopSession` is left out on purpose: a
/// stopped session stays readable (`GET` answers it as `terminated`), which a fuzzer's
/// use-after-free check would read as a leak; the log stream is left out because with
/// `follow=true` it stays open as long as the session lives.
fn session_links() -> Value {
    let id = json!({"id": "$response.body#/id"});
    let mut links = serde_json::Map::new();
    for op in ["getSession", "execCommand", "extendSession", "readFile", "writeFile"] {
        links.insert(op.to_string(), json!({"operationId": op, "parameters": id}));
    }
    Value::Object(links)
}

/// `schema` or `null` (the server reads a `null` field as an absent one).
fn or_null(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// One server-sent event: its name and its JSON `data` (schemathesis and the OpenAPI 3.1 reading:
/// the media type's schema describes each event).
fn sse_event(name: &str, data: &str) -> Value {
    json!({
        "type": "object", "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"$ref": format!("#/components/schemas/{data}")}}
        }
    })
}

/// The bad-query answer of a route with query parameters.
fn bad_query() -> Value {
    json!({"400": {"description": "a malformed query parameter", "content": error_ref()}})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "sbx-0123456789ab"})
}

fn path_query() -> Value {
    json!({"name": "path", "in": "query", "required": true,
           "schema": {"type": "string", "minLength": 1, "pattern": "^[^\\x00]+$", "not": {"pattern": "^/*(\\.\\.?(/+|$))*$"}},
           "description": "a file's sandbox path, absolute or relative to the working directory (not the root, `.` or `..`)"})
}

/// The document of a daemon whose templates are `templates` (a create may name only those).
pub fn document(templates: &[&str]) -> Value {
    // Built apart: inline, the schema would pass json!'s recursion limit.
    let ca_certificates = json!({
        "description": "certificate authorities to trust besides the image's: \"host\" (the daemon host's system bundle) or PEM file paths on the daemon's host; default the daemon's DAGGER_SANDBOX_CA_CERTIFICATES",
        "oneOf": [{"type": "string", "enum": ["host"]}, {"type": "array", "items": {"type": "string"}}]
    });
    let caches = json!({
        "description": "dependency caches shared by this user's sandboxes: true (all), false (default) or a list of kinds",
        "oneOf": [{"type": "boolean"}, {"type": "array", "items": {"enum": ["npm", "pnpm", "yarn", "pip", "node-modules"]}}]
    });
    let nullable_string = json!({"type": ["string", "null"]});
    let ttl = json!({"type": "integer", "minimum": 1, "maximum": crate::sessions::MAX_TTL_SECONDS});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dagger-sandbox daemon",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sessions of isolated sandboxes: create, exec, files, logs, TTL. See docs/rest-api.md."
        },
        "servers": [{"url": "http://127.0.0.1:7878"}],
        "security": [{"bearer": []}],
        "paths": {
            "/": {"get": {
                "operationId": "dashboard", "summary": "Dashboard page (it reads the token from its own `?token=`)", "security": [],
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}}
            }},
            "/assets/app.js": {"get": {
                "operationId": "dashboardScript", "summary": "Dashboard script", "security": [],
                "responses": {"200": {"description": "JavaScript module", "content": {"text/javascript": {}}}}
            }},
            "/assets/style.css": {"get": {
                "operationId": "dashboardStyle", "summary": "Dashboard style sheet", "security": [],
                "responses": {"200": {"description": "CSS", "content": {"text/css": {}}}}
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}
            }},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus metrics", "security": [],
                "responses": {"200": {"description": "text format 0.0.4", "content": {"text/plain": {}}}}
            }},
            "/api/identity": {"get": {
                "summary": "Proof that this daemon holds the state dir's token, without revealing it (clients check it before sending the token)",
                "security": [],
                "parameters": [{"name": "nonce", "in": "query", "required": true,
                                "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32,128}$"},
                                "description": "a fresh random value chosen by the client"}],
                "responses": {
                    "200": {"description": "the proof", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["proof"],
                        "properties": {"proof": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                                                 "description": "hex HMAC-SHA256 under the token of \"dagger-sandbox identity v1\\u0000\" followed by the nonce"}}
                    }}}},
                    "400": {"description": "missing or malformed nonce", "content": error_ref()}
                }
            }},
            "/api/health": {"get": {
                "operationId": "health", "summary": "Daemon health",
                "responses": {
                    "200": {"description": "healthy", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                    "401": {"description": "missing or wrong bearer token", "content": error_ref()}
                }
            }},
            "/api/sandbox": {
                "get": {
                    "operationId": "listSessions", "summary": "List sessions, newest first",
                    "parameters": [{"name": "all", "in": "query", "schema": {"type": "boolean"},
                                    "description": "include terminated sessions (`true` or `false`)"}],
                    "responses": merge(json!({
                        "200": {"description": "sessions", "content": {"application/json": {"schema": {
                            "type": "object", "required": ["sandboxes"],
                            "properties": {"sandboxes": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}}
                        }}}},
                        "401": {"description": "missing or wrong bearer token", "content": error_ref()}
                    }), bad_query())
                },
                "post": {
                    "operationId": "createSession", "summary": "Create a session",
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateRequest"}}}},
                    "responses": merge(json!({
                        "201": {"description": "created (and its service ready)", "content": session_ref(), "links": session_links()},
                        "400": {"description": "invalid request; nothing was created", "content": error_ref()},
                        "401": {"description": "missing or wrong bearer token", "content": error_ref()},
                        "429": {"description": "QUOTA_EXCEEDED: the daemon holds its maximum of sandboxes (--max-sandboxes); nothing was created", "content": error_ref()},
                        "502": {"description": "ENGINE_ERROR: the engine could not create it (an image that is not on the engine and cannot be pulled, a service command that exited); nothing was created", "content": error_ref()},
                        "504": {"description": "the service did not accept connections in time", "content": error_ref()}
                    }), json!({"503": engine_errors()["503"].clone()}))
                },
                "delete": {
                    "operationId": "stopAllSessions", "summary": "Stop every session that is not terminated",
                    "responses": merge(json!({
                        "200": {"description": "how many were stopped", "content": {"application/json": {"schema": {
                            "type": "object", "required": ["stopped"], "properties": {"stopped": {"type": "integer"}}
                        }}}},
                        "401": {"description": "missing or wrong bearer token", "content": error_ref()}
                    }), engine_errors())
                }
            },
            "/api/sandbox/{id}": {
                "parameters": [id_param()],
                "get": {
                    "operationId": "getSession", "summary": "One session",
                    "responses": merge(json!({"200": {"description": "the session", "content": session_ref()}}), session_errors())
                },
                "delete": {
                    "operationId": "stopSession", "summary": "Stop a session; its engine resources are removed before the answer",
                    "responses": merge(merge(json!({"200": {"description": "the terminated session", "content": session_ref()}}), session_errors()), engine_errors())
                }
            },
            "/api/sandbox/{id}/exec": {
                "parameters": [id_param()],
                "post": {
                    "operationId": "execCommand", "summary": "Run a command (sh -c); a non-zero exit is a result",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExecRequest"}}}},
                    "responses": merge(json!({
                        "200": {"description": "the result", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExecResult"}}}},
                        "400": {"description": "invalid request", "content": error_ref()},
                        "409": {"description": "the session has ended (SESSION_ENDED), its sandbox was stopped by a user (STOPPED), or `cwd` does not exist in the sandbox (NOT_FOUND)", "content": error_ref()},
                        "504": {"description": "the command timed out and was killed", "content": error_ref()}
                    }), merge(session_errors(), engine_errors()))
                }
            },
            "/api/sandbox/{id}/extend": {
                "parameters": [id_param()],
                "post": {
                    "operationId": "extendSession", "summary": "Move expiresAt to max(expiresAt, now) + ttlSeconds",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["ttlSeconds"], "additionalProperties": false,
                        "properties": {"ttlSeconds": ttl.clone()}
                    }}}},
                    "responses": merge(json!({
                        "200": {"description": "the session", "content": session_ref()},
                        "400": {"description": "invalid request", "content": error_ref()},
                        "409": {"description": "the session has ended", "content": error_ref()}
                    }), session_errors())
                }
            },
            "/api/sandbox/{id}/stop": {
                "parameters": [id_param()],
                "post": {
                    "operationId": "stopSession", "summary": "Stop the sandbox and keep it (files kept, nothing running)",
                    "description": "The session becomes `stopped` (`stoppedBy: user`); calls on it answer 409 STOPPED until `resume`. Idempotent. DELETE ends a session for good.",
                    "responses": merge(json!({
                        "200": {"description": "the session, stopped", "content": session_ref()},
                        "409": {"description": "the session has ended", "content": error_ref()}
                    }), merge(session_errors(), engine_errors()))
                }
            },
            "/api/sandbox/{id}/resume": {
                "parameters": [id_param()],
                "post": {
                    "operationId": "resumeSession", "summary": "Start a stopped sandbox again, with the same files, env and workdir",
                    "description": "Its service, if any, starts again; ports may get new host numbers. On a running session it only records activity.",
                    "responses": merge(json!({
                        "200": {"description": "the session, active", "content": session_ref()},
                        "409": {"description": "the session has ended", "content": error_ref()}
                    }), merge(session_errors(), engine_errors()))
                }
            },
            "/api/sandbox/{id}/attach": {
                "parameters": [id_param()],
                "post": {
                    "operationId": "attachSession", "summary": "What a client needs to drive the sandbox from its own process",
                    "description": "The session plus `config`, the sandbox config it was made with (env values left out; a container keeps them). Counts as a call: records activity and resumes a sandbox the idle timeout stopped; one a user stopped is answered with `status: stopped` (resume it to use it). A dagger sandbox is 400.",
                    "responses": merge(json!({
                        "200": {"description": "the session and its config", "content": {"application/json": {"schema": {
                            "allOf": [{"$ref": "#/components/schemas/Session"}],
                            "type": "object", "required": ["config"],
                            "properties": {"config": {"type": "object"}}
                        }}}},
                        "400": {"description": "a dagger sandbox cannot be attached", "content": error_ref()},
                        "409": {"description": "the session has ended", "content": error_ref()}
                    }), merge(session_errors(), engine_errors()))
                }
            },
            "/api/sandbox/{id}/files": {
                "parameters": [id_param(), path_query()],
                "get": {
                    "operationId": "readFile", "summary": "Read a file, byte for byte, streamed",
                    "description": "Streamed as it is read, with its Content-Length. A file over 1 GiB (1073741824 bytes) is 413 TOO_LARGE before any of it is read.",
                    "responses": merge(json!({
                        "200": {"description": "the bytes", "content": {"application/octet-stream": {}}},
                        "400": {"description": "invalid path, or not a regular file", "content": error_ref()},
                        "409": {"description": "the session has ended, or its sandbox was stopped by a user (STOPPED; resume it)", "content": error_ref()},
                        "413": {"description": "the file is over the download limit", "content": error_ref()}
                    }), merge(session_errors(), engine_errors()))
                },
                "put": {
                    "operationId": "writeFile", "summary": "Write a file (parent directories created)",
                    "parameters": [{"name": "mode", "in": "query", "schema": {"type": "string", "pattern": "^[0-7]{1,4}$"},
                                    "description": "octal permission bits, default 644"}],
                    "description": "The body is streamed to a host spool file, then into the sandbox in one write: a body that fails halfway writes nothing. At most 256 MiB (268435456 bytes); a bigger one is 413 TOO_LARGE.",
                    "requestBody": {"required": true, "content": {"application/octet-stream": {}}},
                    "responses": merge(json!({
                        "204": {"description": "written"},
                        "400": {"description": "invalid path or mode", "content": error_ref()},
                        "403": {"description": "restricted path", "content": error_ref()},
                        "409": {"description": "the session has ended, or its sandbox was stopped by a user (STOPPED; resume it)", "content": error_ref()},
                        "413": {"description": "the body is over the upload limit", "content": error_ref()}
                    }), merge(session_errors(), engine_errors()))
                }
            },
            "/api/sandbox/{id}/logs": {
                "parameters": [id_param()],
                "get": {
                    "operationId": "streamLogs", "summary": "Output as server-sent events (`log` events, then one `end` event)",
                    "description": "An EventSource client may pass the token as ?token= on this route only.",
                    "security": [{"bearer": []}, {"queryToken": []}],
                    "parameters": [{"name": "follow", "in": "query", "schema": {"type": "boolean"},
                                    "description": "keep the stream open until the session ends (`true` or `false`)"}],
                    "responses": merge(merge(json!({
                        "200": {"description": "event stream: `log` events (LogLine), then one `end` event (LogEnd)", "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/LogEvent"}}}}
                    }), session_errors()), bad_query())
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the token file of the daemon's state dir"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token"}
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string", "enum": [
                            "INVALID_ARGUMENT", "INVALID_PATH", "RESTRICTED_PATH", "NOT_FOUND", "TIMEOUT", "CANCELLED",
                            "CLOSED", "ENGINE_UNAVAILABLE", "ENGINE_ERROR", "IO_ERROR", "UNAUTHORIZED", "FORBIDDEN",
                            "SESSION_ENDED", "STOPPED", "QUOTA_EXCEEDED", "TOO_LARGE", "METHOD_NOT_ALLOWED", "INTERNAL"
                        ]},
                        "message": {"type": "string"}
                    }}}
                },
                "Health": {
                    "type": "object", "required": ["status", "version", "pid", "sessions"],
                    "properties": {
                        "status": {"const": "ok"}, "version": {"type": "string"},
                        "pid": {"type": "integer"}, "sessions": {"type": "integer"}
                    }
                },
                "PortMapping": {
                    "type": "object", "required": ["containerPort", "hostPort", "url"],
                    "properties": {"containerPort": {"type": "integer"}, "hostPort": {"type": "integer"}, "url": {"type": "string"}}
                },
                "Session": {
                    "type": "object",
                    "required": ["id", "status", "stoppedBy", "backend", "isolation", "image", "template", "projectId", "userId",
                                 "containerId", "workingDirectory", "command", "ports", "hostUrl", "metadata",
                                 "createdAt", "lastActiveAt", "expiresAt", "endedReason"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"enum": ["active", "paused", "stopped", "terminated"]},
                        "stoppedBy": {"enum": ["user", "idle", null]},
                        "backend": {"enum": ["dagger", "docker", "local"]},
                        "isolation": {"type": "string"},
                        "image": nullable_string, "template": nullable_string,
                        "projectId": nullable_string, "userId": nullable_string, "containerId": nullable_string,
                        "workingDirectory": {"type": "string"},
                        "command": nullable_string,
                        "ports": {"type": "array", "items": {"$ref": "#/components/schemas/PortMapping"}},
                        "hostUrl": nullable_string,
                        "metadata": {"type": "object"},
                        "createdAt": {"type": "string", "format": "date-time"},
                        "lastActiveAt": {"type": "string", "format": "date-time"},
                        "expiresAt": {"type": "string", "format": "date-time"},
                        "endedReason": {"type": ["string", "null"], "enum": ["stopped", "expired", "lost", "failed", "engine_stopped", "abandoned", null]}
                    }
                },
                "CreateRequest": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "template": or_null(json!({"enum": templates, "description": "a built-in template or one of the daemon's templates.json"})),
                        "image": or_null(non_blank()),
                        "backend": {"enum": ["auto", "dagger", "docker", "local", null]},
                        "projectId": nullable_string, "userId": nullable_string,
                        "ttlSeconds": or_null(ttl),
                        "ports": or_null(json!({"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535},
                                  "description": "needs `command`"})),
                        "command": or_null(non_blank()),
                        "env": env_schema(),
                        "workingDirectory": or_null(absolute_path()),
                        "metadata": {"type": ["object", "null"]},
                        "fallback": {"type": ["boolean", "null"], "description": "backend auto only: allow the local backend (process isolation, commands run on the host) when no container engine answers; default false"},
                        "caCertificates": or_null(ca_certificates),
                        "caches": or_null(caches)
                    },
                    "description": "`ports` needs `command`; the dagger backend runs no service (no `command`, no `ports`)",
                    "allOf": [
                        {"if": {"required": ["ports"], "properties": {"ports": {"type": "array", "minItems": 1}}},
                         "then": {"required": ["command"], "properties": {"command": non_blank()}}},
                        {"if": {"required": ["backend"], "properties": {"backend": {"const": "dagger"}}},
                         "then": {"properties": {"command": {"type": "null"}, "ports": {"type": "null"}}}}
                    ]
                },
                "ExecRequest": {
                    "type": "object", "required": ["command"], "additionalProperties": false,
                    "properties": {
                        "command": non_blank(),
                        "env": env_schema(),
                        "cwd": {"type": ["string", "null"], "minLength": 1, "pattern": "^[^\\x00]*$"},
                        "timeoutMs": {"type": ["integer", "null"], "minimum": 1, "maximum": u64::MAX},
                        "stdin": nullable_string
                    }
                },
                "ExecResult": {
                    "type": "object", "required": ["exitCode", "stdout", "stderr", "durationMs", "truncated"],
                    "properties": {
                        "exitCode": {"type": "integer"}, "stdout": {"type": "string"}, "stderr": {"type": "string"},
                        "durationMs": {"type": "integer"}, "truncated": {"type": "boolean"}
                    }
                },
                "LogLine": {
                    "type": "object", "required": ["stream", "text", "at"],
                    "properties": {
                        "stream": {"enum": ["stdout", "stderr", "system"]},
                        "text": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"}
                    }
                },
                "LogEnd": {
                    "type": "object", "required": ["status", "endedReason"],
                    "description": "the data of the stream's last event, `end`: the session's status at that moment",
                    "properties": {
                        "status": {"enum": ["active", "paused", "stopped", "terminated", "unknown"]},
                        "endedReason": {"type": ["string", "null"], "enum": ["stopped", "expired", "lost", "failed", "engine_stopped", "abandoned", null]}
                    }
                },
                "LogEvent": {"oneOf": [sse_event("log", "LogLine"), sse_event("end", "LogEnd")]}
            }
        }
    });
    snapshots::add(&mut doc);
    doc
}

/// Every (method, path) the document describes, methods upper-case.
pub fn documented_routes(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_and_the_router_name_the_same_routes() {
        let mut served: Vec<(String, String)> =
            crate::api::routes().into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        served.sort();
        let documented = documented_routes(&document(&["node"]));
        let missing: Vec<_> = served.iter().filter(|r| !documented.contains(r)).collect();
        let extra: Vec<_> = documented.iter().filter(|r| !served.contains(r)).collect();
        assert!(missing.is_empty(), "routes served but not documented: {missing:?}");
        assert!(extra.is_empty(), "routes documented but not served: {extra:?}");
    }

    #[test]
    fn every_ref_points_at_a_schema() {
        let doc = document(&["node"]);
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
        }
    }
}
