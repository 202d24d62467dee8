//! The `MserverService` RPC: heartbeats, DDL, locations and listings. Every request is
//! answered by the leader; others reply NOT_LEADER with the leader's address.

use std::sync::Arc;

use rpc::common::Peer;
use rpc::mserver::mserver_service_server::MserverService;
use rpc::mserver::*;
use tonic::{Request, Response, Status};

use crate::catalog::{CatalogCmd, Replica, ServerEntry, TableEntry, TabletEntry};
use crate::{Liveness, Mserver, MserverError};

pub(crate) struct Service(pub Arc<Mserver>);

type Rpc<T> = Result<Response<T>, Status>;

fn table_info(t: &TableEntry) -> TableInfo {
    TableInfo {
        table_id: t.table_id.clone(),
        namespace_name: t.namespace.clone(),
        name: t.name.clone(),
        schema: t.schema.clone(),
        num_tablets: t.tablet_ids.len() as u32,
        range_partitioned: t.range_partitioned,
        replication_factor: t.replication_factor,
    }
}

pub(crate) fn create_request(t: &TabletEntry, table_name: &str) -> CreateTabletRequest {
    CreateTabletRequest {
        tablet_id: t.tablet_id.clone(),
        table_id: t.table_id.clone(),
        table_name: table_name.to_owned(),
        hash_start: t.hash_start,
        hash_end: t.hash_end,
        peers: t
            .replicas
            .iter()
            .map(|r| Peer {
                server_uuid: r.server_uuid.clone(),
                node_id: r.node_id,
                rpc_addr: r.rpc_addr.clone(),
            })
            .collect(),
        initial_leader_uuid: t.initial_leader_uuid.clone(),
    }
}

impl Mserver {
    /// The leader replica of each tablet as last reported (highest term wins).
    fn reported_leaders(&self) -> std::collections::HashMap<String, (String, u64)> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: std::collections::HashMap<String, (String, u64)> = Default::default();
        for (uuid, l) in live.iter() {
            for r in l.tablets.iter().filter(|r| r.is_leader) {
                let e = out
                    .entry(r.tablet_id.clone())
                    .or_insert((uuid.clone(), r.term));
                if r.term > e.1 {
                    *e = (uuid.clone(), r.term);
                }
            }
        }
        out
    }

    fn location(
        &self,
        t: &TabletEntry,
        leaders: &std::collections::HashMap<String, (String, u64)>,
    ) -> TabletLocation {
        let leader = leaders.get(&t.tablet_id);
        TabletLocation {
            tablet_id: t.tablet_id.clone(),
            table_id: t.table_id.clone(),
            hash_start: t.hash_start,
            hash_end: t.hash_end,
            replicas: t
                .replicas
                .iter()
                .map(|r| TabletReplica {
                    server_uuid: r.server_uuid.clone(),
                    node_id: r.node_id,
                    rpc_addr: r.rpc_addr.clone(),
                    is_leader: leader.map(|l| l.0 == r.server_uuid).unwrap_or(false),
                    alive: self.is_alive(&r.server_uuid).0,
                })
                .collect(),
            leader_term: leader.map(|l| l.1).unwrap_or(0),
        }
    }

    async fn heartbeat(&self, req: HeartbeatRequest) -> Result<HeartbeatResponse, MserverError> {
        self.require_leader()?;
        let known = self.catalog().servers.get(&req.server_uuid).cloned();
        let entry = ServerEntry {
            server_uuid: req.server_uuid.clone(),
            node_id: req.node_id,
            rpc_addr: req.rpc_addr.clone(),
            http_addr: req.http_addr.clone(),
        };
        if known.as_ref() != Some(&entry) {
            self.propose(CatalogCmd::RegisterServer(entry)).await?;
        }
        let reported: std::collections::HashSet<String> =
            req.tablets.iter().map(|t| t.tablet_id.clone()).collect();
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = Liveness::next(
                live.get(&req.server_uuid),
                req.tablets,
                req.disk_bytes,
                (req.reads_total, req.writes_total),
            );
            next.cql_addr = req.cql_addr;
            live.insert(req.server_uuid.clone(), next);
        }
        let cat = self.catalog();
        let create_tablets = cat
            .tablets
            .values()
            .filter(|t| {
                t.replicas.iter().any(|r| r.server_uuid == req.server_uuid)
                    && !reported.contains(&t.tablet_id)
            })
            .map(|t| {
                let name = cat
                    .tables
                    .get(&t.table_id)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                create_request(t, &name)
            })
            .collect();
        let delete_tablets = reported
            .into_iter()
            .filter(|id| !cat.tablets.contains_key(id))
            .collect();
        Ok(HeartbeatResponse {
            status: None,
            create_tablets,
            delete_tablets,
        })
    }

    async fn create_table(&self, req: CreateTableRequest) -> Result<TableInfo, MserverError> {
        self.require_leader()?;
        if req.name.is_empty() || req.namespace_name.is_empty() {
            return Err(MserverError::InvalidArgument(
                "table and namespace names must not be empty".into(),
            ));
        }
        let cat = self.catalog();
        if let Some(t) = cat.find_table(&req.namespace_name, &req.name) {
            return if req.if_not_exists {
                Ok(table_info(t))
            } else {
                Err(MserverError::AlreadyExists(format!(
                    "table {}.{}",
                    req.namespace_name, req.name
                )))
            };
        }
        if !cat.namespaces.contains(&req.namespace_name) {
            return Err(MserverError::NotFound(format!(
                "namespace {}",
                req.namespace_name
            )));
        }
        let rf = if req.replication_factor == 0 {
            self.config.replication_factor
        } else {
            req.replication_factor
        }
        .max(1);
        let live: Vec<&ServerEntry> = cat
            .servers
            .values()
            .filter(|s| self.is_alive(&s.server_uuid).0)
            .collect();
        if (live.len() as u32) < rf {
            return Err(MserverError::NotEnoughServers {
                need: rf,
                have: live.len() as u32,
            });
        }
        let n = if req.range_partitioned {
            1
        } else if req.num_tablets == 0 {
            live.len() as u32
        } else {
            req.num_tablets.min(4096)
        };
        // Spread replicas and first leaders: start each tablet's replica list at the server
        // with the fewest leaders so far, then the next ones in ring order.
        let mut leaders_per_server = vec![0u32; live.len()];
        for t in cat.tablets.values() {
            if let Some(i) = live
                .iter()
                .position(|s| s.server_uuid == t.initial_leader_uuid)
            {
                leaders_per_server[i] += 1;
            }
        }
        let table_id = common::new_id();
        let mut tablets = Vec::new();
        for i in 0..n {
            let start = (0..live.len())
                .min_by_key(|&j| {
                    (
                        leaders_per_server[j],
                        (j + live.len() - (i as usize % live.len())) % live.len(),
                    )
                })
                .unwrap_or(0);
            leaders_per_server[start] += 1;
            let replicas: Vec<Replica> = (0..rf as usize)
                .map(|k| {
                    let s = live[(start + k) % live.len()];
                    Replica {
                        server_uuid: s.server_uuid.clone(),
                        node_id: s.node_id,
                        rpc_addr: s.rpc_addr.clone(),
                    }
                })
                .collect();
            let (hash_start, hash_end) = if req.range_partitioned {
                (0, common::keys::HASH_SPACE)
            } else {
                common::keys::hash_split(i, n)
            };
            tablets.push(TabletEntry {
                tablet_id: common::new_id(),
                table_id: table_id.clone(),
                hash_start,
                hash_end,
                initial_leader_uuid: replicas[0].server_uuid.clone(),
                replicas,
            });
        }
        let table = TableEntry {
            table_id,
            namespace: req.namespace_name.clone(),
            name: req.name.clone(),
            schema: req.schema,
            range_partitioned: req.range_partitioned,
            replication_factor: rf,
            tablet_ids: tablets.iter().map(|t| t.tablet_id.clone()).collect(),
        };
        self.propose(CatalogCmd::CreateTable {
            table: table.clone(),
            tablets: tablets.clone(),
        })
        .await?;
        // Tell the replicas now rather than at their next heartbeat.
        for t in &tablets {
            let req = create_request(t, &table.name);
            for r in &t.replicas {
                let pool = self.pool.clone();
                let addr = r.rpc_addr.clone();
                let req = req.clone();
                tokio::spawn(async move {
                    if let Ok(ch) = pool.get(&addr) {
                        let mut c =
                            rpc::tablet::tablet_service_client::TabletServiceClient::new(ch);
                        if let Err(e) = c.create_tablet(req).await {
                            tracing::debug!(%addr, error = %e, "create tablet (heartbeat will retry)");
                        }
                    }
                });
            }
        }
        Ok(table_info(&table))
    }
}

fn respond<T>(
    r: Result<T, MserverError>,
    on_err: impl FnOnce(Option<rpc::common::Status>) -> T,
) -> Rpc<T> {
    Ok(Response::new(match r {
        Ok(v) => v,
        Err(e) => on_err(e.status()),
    }))
}

#[tonic::async_trait]
impl MserverService for Service {
    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Rpc<HeartbeatResponse> {
        let r = self.0.heartbeat(request.into_inner()).await;
        respond(r, |status| HeartbeatResponse {
            status,
            ..Default::default()
        })
    }

    async fn create_namespace(
        &self,
        request: Request<CreateNamespaceRequest>,
    ) -> Rpc<CreateNamespaceResponse> {
        let req = request.into_inner();
        let r = async {
            self.0.require_leader()?;
            if req.name.is_empty() {
                return Err(MserverError::InvalidArgument(
                    "namespace name must not be empty".into(),
                ));
            }
            if self.0.catalog().namespaces.contains(&req.name) {
                return if req.if_not_exists {
                    Ok(())
                } else {
                    Err(MserverError::AlreadyExists(format!(
                        "namespace {}",
                        req.name
                    )))
                };
            }
            self.0
                .propose(CatalogCmd::CreateNamespace {
                    name: req.name.clone(),
                })
                .await
        }
        .await;
        respond(
            r.map(|_| CreateNamespaceResponse { status: None }),
            |status| CreateNamespaceResponse { status },
        )
    }

    async fn delete_namespace(
        &self,
        request: Request<DeleteNamespaceRequest>,
    ) -> Rpc<DeleteNamespaceResponse> {
        let req = request.into_inner();
        let r = async {
            self.0.require_leader()?;
            if !self.0.catalog().namespaces.contains(&req.name) {
                return if req.if_exists {
                    Ok(())
                } else {
                    Err(MserverError::NotFound(format!("namespace {}", req.name)))
                };
            }
            if self
                .0
                .catalog()
                .tables
                .values()
                .any(|t| t.namespace == req.name)
            {
                return Err(MserverError::InvalidArgument(format!(
                    "namespace {} still has tables",
                    req.name
                )));
            }
            self.0
                .propose(CatalogCmd::DeleteNamespace {
                    name: req.name.clone(),
                })
                .await
        }
        .await;
        respond(
            r.map(|_| DeleteNamespaceResponse { status: None }),
            |status| DeleteNamespaceResponse { status },
        )
    }

    async fn create_table(&self, request: Request<CreateTableRequest>) -> Rpc<CreateTableResponse> {
        let r = self.0.create_table(request.into_inner()).await;
        respond(
            r.map(|t| CreateTableResponse {
                status: None,
                table: Some(t),
            }),
            |status| CreateTableResponse {
                status,
                table: None,
            },
        )
    }

    async fn delete_table(&self, request: Request<DeleteTableRequest>) -> Rpc<DeleteTableResponse> {
        let req = request.into_inner();
        let r = async {
            self.0.require_leader()?;
            let id = self
                .0
                .catalog()
                .find_table(&req.namespace_name, &req.name)
                .map(|t| t.table_id.clone())
                .ok_or_else(|| {
                    MserverError::NotFound(format!("table {}.{}", req.namespace_name, req.name))
                })?;
            // Replicas learn at their next heartbeat that their tablets are gone.
            self.0
                .propose(CatalogCmd::DeleteTable { table_id: id })
                .await
        }
        .await;
        respond(r.map(|_| DeleteTableResponse { status: None }), |status| {
            DeleteTableResponse { status }
        })
    }

    async fn alter_table(&self, request: Request<AlterTableRequest>) -> Rpc<AlterTableResponse> {
        let req = request.into_inner();
        let r = async {
            self.0.require_leader()?;
            let (id, schema) = self
                .0
                .catalog()
                .find_table(&req.namespace_name, &req.name)
                .map(|t| (t.table_id.clone(), t.schema.clone()))
                .ok_or_else(|| {
                    MserverError::NotFound(format!("table {}.{}", req.namespace_name, req.name))
                })?;
            if req.set_schema && !req.expected_schema.is_empty() && req.expected_schema != schema {
                return Err(MserverError::InvalidArgument(format!(
                    "table {}.{} was altered concurrently",
                    req.namespace_name, req.name
                )));
            }
            if !req.new_name.is_empty()
                && self
                    .0
                    .catalog()
                    .find_table(&req.namespace_name, &req.new_name)
                    .is_some()
            {
                return Err(MserverError::AlreadyExists(format!(
                    "table {}.{}",
                    req.namespace_name, req.new_name
                )));
            }
            self.0
                .propose(CatalogCmd::AlterTable {
                    table_id: id,
                    new_name: (!req.new_name.is_empty()).then_some(req.new_name),
                    schema: req.set_schema.then_some(req.schema),
                })
                .await
        }
        .await;
        respond(r.map(|_| AlterTableResponse { status: None }), |status| {
            AlterTableResponse { status }
        })
    }

    async fn list_tables(&self, _request: Request<ListTablesRequest>) -> Rpc<ListTablesResponse> {
        let r = self.0.require_leader().map(|_| {
            let c = self.0.catalog();
            ListTablesResponse {
                status: None,
                tables: c.tables.values().map(table_info).collect(),
                namespaces: c.namespaces.iter().cloned().collect(),
            }
        });
        respond(r, |status| ListTablesResponse {
            status,
            ..Default::default()
        })
    }

    async fn get_table_locations(
        &self,
        request: Request<GetTableLocationsRequest>,
    ) -> Rpc<GetTableLocationsResponse> {
        let req = request.into_inner();
        let r = self.0.require_leader().and_then(|_| {
            let c = self.0.catalog();
            let t = if !req.table_id.is_empty() {
                c.tables.get(&req.table_id)
            } else {
                c.find_table(&req.namespace_name, &req.name)
            };
            let t = t.ok_or_else(|| {
                MserverError::NotFound(format!(
                    "table {}.{}{}",
                    req.namespace_name, req.name, req.table_id
                ))
            })?;
            let leaders = self.0.reported_leaders();
            let tablets = t
                .tablet_ids
                .iter()
                .filter_map(|id| c.tablets.get(id))
                .map(|tb| self.0.location(tb, &leaders))
                .collect();
            Ok(GetTableLocationsResponse {
                status: None,
                table: Some(table_info(t)),
                tablets,
            })
        });
        respond(r, |status| GetTableLocationsResponse {
            status,
            ..Default::default()
        })
    }

    async fn list_servers(
        &self,
        _request: Request<ListServersRequest>,
    ) -> Rpc<ListServersResponse> {
        let m = &self.0;
        let r = m.require_leader().map(|_| {
            let c = m.catalog();
            let leaders = m.reported_leaders();
            let live = m.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let servers = c
                .servers
                .values()
                .map(|s| {
                    let (alive, age) = m.is_alive(&s.server_uuid);
                    let l = live.get(&s.server_uuid);
                    ServerInfo {
                        server_uuid: s.server_uuid.clone(),
                        node_id: s.node_id,
                        rpc_addr: s.rpc_addr.clone(),
                        http_addr: s.http_addr.clone(),
                        alive,
                        heartbeat_age_ms: age,
                        num_tablets: c
                            .tablets
                            .values()
                            .filter(|t| t.replicas.iter().any(|r| r.server_uuid == s.server_uuid))
                            .count() as u32,
                        num_leaders: leaders
                            .values()
                            .filter(|(u, _)| u == &s.server_uuid)
                            .count() as u32,
                        disk_bytes: l.map(|l| l.disk_bytes).unwrap_or(0),
                        cql_addr: l.map(|l| l.cql_addr.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            let metrics = m.raft.metrics().borrow().clone();
            let mservers = m
                .config
                .mserver_addrs
                .iter()
                .enumerate()
                .map(|(i, addr)| {
                    let id = i as u64 + 1;
                    let role = if metrics.current_leader == Some(id) {
                        "LEADER"
                    } else if id == m.node_id {
                        "FOLLOWER"
                    } else {
                        match metrics
                            .replication
                            .as_ref()
                            .and_then(|r| r.get(&id).cloned())
                        {
                            Some(Some(_)) => "FOLLOWER",
                            _ => "UNKNOWN",
                        }
                    };
                    MserverInfo {
                        node_id: id,
                        rpc_addr: addr.clone(),
                        role: role.into(),
                    }
                })
                .collect();
            ListServersResponse {
                status: None,
                servers,
                mservers,
                replication_factor: m.config.replication_factor,
            }
        });
        respond(r, |status| ListServersResponse {
            status,
            ..Default::default()
        })
    }

    async fn list_tablets(
        &self,
        _request: Request<ListTabletsRequest>,
    ) -> Rpc<ListTabletsResponse> {
        let r = self.0.require_leader().map(|_| {
            let c = self.0.catalog();
            let leaders = self.0.reported_leaders();
            ListTabletsResponse {
                status: None,
                tablets: c
                    .tablets
                    .values()
                    .map(|t| self.0.location(t, &leaders))
                    .collect(),
                tables: c.tables.values().map(table_info).collect(),
            }
        });
        respond(r, |status| ListTabletsResponse {
            status,
            ..Default::default()
        })
    }
}
