//! A CRI client over a test node's socket: the calls kubelet makes, bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// A CRI client: the calls kubelet makes.
#[derive(Debug, Clone)]
pub(crate) struct Cri {
    /// `runtime.v1.RuntimeService`.
    pub(crate) runtime: RuntimeServiceClient<Channel>,
    /// `runtime.v1.ImageService`.
    pub(crate) images: ImageServiceClient<Channel>,
}

/// A pod as the tests describe it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodSpec {
    /// `metadata.name` (also the uid, made unique by the caller).
    pub(crate) name: String,
    /// Pod annotations.
    pub(crate) annotations: HashMap<String, String>,
    /// `hostNetwork: true`.
    pub(crate) host_network: bool,
    /// Where CRI writes the containers' logs.
    pub(crate) log_directory: PathBuf,
    /// The RuntimeClass handler (`wasmoci` when empty).
    pub(crate) handler: String,
    /// The pod's cgroup (cgroupfs driver), as kubelet sets it: containerd puts each
    /// container's at `PARENT/ID` in its spec. None when empty.
    pub(crate) cgroup_parent: String,
}

/// A container as the tests describe it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerSpec {
    /// `name`.
    pub(crate) name: String,
    /// `image`.
    pub(crate) image: String,
    /// `command`.
    pub(crate) command: Vec<String>,
    /// `args`.
    pub(crate) args: Vec<String>,
    /// `resources.limits.memory` in bytes (0: none).
    pub(crate) memory_limit: i64,
    /// `resources.limits.cpu` as CFS quota and period in microseconds (0: none).
    pub(crate) cpu_quota: i64,
    /// (container path, host path, read-only) of hostPath volumes.
    pub(crate) mounts: Vec<(String, String, bool)>,
    /// `env`.
    pub(crate) env: Vec<(String, String)>,
    /// `stdin: true`.
    pub(crate) stdin: bool,
    /// `securityContext.runAsUser`.
    pub(crate) run_as_user: Option<i64>,
    /// The pod's `fsGroup` and `supplementalGroups`.
    pub(crate) supplemental_groups: Vec<i64>,
}

/// A started pod: its id and the config CRI wants again with every container.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    /// The sandbox id.
    pub(crate) id: String,
    /// Its config.
    pub(crate) config: cri::PodSandboxConfig,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exited {
    /// Its exit code.
    pub(crate) exit_code: i32,
    /// CRI's reason (`Completed`, `Error`, `OOMKilled`).
    pub(crate) reason: String,
    /// CRI's message.
    pub(crate) message: String,
}

impl Cri {
    /// Connects to containerd's socket.
    pub(crate) async fn connect(address: &Path) -> Result<Cri, tonic::transport::Error> {
        let channel = containerd_client::connect(address).await?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// `PullImage`: the image's id.
    pub(crate) async fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        let response = self
            .images
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        Ok(response.into_inner().image_ref)
    }

    /// `RunPodSandbox` with `runtime_handler = "wasmoci"`.
    pub(crate) async fn run_pod(&mut self, spec: &PodSpec) -> Result<Pod, tonic::Status> {
        std::fs::create_dir_all(&spec.log_directory).unwrap();
        let network = if spec.host_network {
            cri::NamespaceMode::Node
        } else {
            cri::NamespaceMode::Pod
        };
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: spec.name.clone(),
                uid: format!("uid-{}", spec.name),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: spec.name.clone(),
            log_directory: spec.log_directory.display().to_string(),
            annotations: spec.annotations.clone(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: network as i32,
                        pid: cri::NamespaceMode::Pod as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                cgroup_parent: spec.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = self
            .runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: if spec.handler.is_empty() {
                    "wasmoci".into()
                } else {
                    spec.handler.clone()
                },
            })
            .await?;
        Ok(Pod {
            id: response.into_inner().pod_sandbox_id,
            config,
        })
    }

    /// `CreateContainer`: the container's id.
    pub(crate) async fn create(
        &mut self,
        pod: &Pod,
        spec: &ContainerSpec,
    ) -> Result<String, tonic::Status> {
        let resources = cri::LinuxContainerResources {
            memory_limit_in_bytes: spec.memory_limit,
            cpu_quota: spec.cpu_quota,
            cpu_period: if spec.cpu_quota > 0 { 100_000 } else { 0 },
            ..Default::default()
        };
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: spec.name.clone(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: spec.image.clone(),
                ..Default::default()
            }),
            command: spec.command.clone(),
            args: spec.args.clone(),
            envs: spec
                .env
                .iter()
                .map(|(key, value)| cri::KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            mounts: spec
                .mounts
                .iter()
                .map(|(container, host, readonly)| cri::Mount {
                    container_path: container.clone(),
                    host_path: host.clone(),
                    readonly: *readonly,
                    ..Default::default()
                })
                .collect(),
            log_path: format!("{}.log", spec.name),
            stdin: spec.stdin,
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(resources),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    run_as_user: spec.run_as_user.map(|value| cri::Int64Value { value }),
                    supplemental_groups: spec.supplemental_groups.clone(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let response = self
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            })
            .await?;
        Ok(response.into_inner().container_id)
    }

    /// `StartContainer`.
    pub(crate) async fn start(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// `ContainerStatus`.
    pub(crate) async fn status(&mut self, id: &str) -> Result<cri::ContainerStatus, tonic::Status> {
        let response = self
            .runtime
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    /// `ContainerStats`.
    pub(crate) async fn stats(&mut self, id: &str) -> Result<cri::ContainerStats, tonic::Status> {
        let response = self
            .runtime
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().stats.unwrap_or_default())
    }

    /// Polls `ContainerStatus` until the container exits (at most `limit`).
    pub(crate) async fn wait_exited(&mut self, id: &str, limit: Duration) -> Exited {
        let start = std::time::Instant::now();
        loop {
            let status = self.status(id).await.expect("ContainerStatus");
            if status.state == cri::ContainerState::ContainerExited as i32 {
                return Exited {
                    exit_code: status.exit_code,
                    reason: status.reason,
                    message: status.message,
                };
            }
            assert!(
                start.elapsed() < limit,
                "container `{id}` still runs after {limit:?}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `StopContainer` then `RemoveContainer`.
    /// StopContainer with `grace` seconds before SIGKILL (the call bounded at 30 s: a
    /// guest the shim cannot stop would keep it waiting), then how it ended.
    pub(crate) async fn stop(&mut self, id: &str, grace: i64) -> Exited {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.runtime.stop_container(cri::StopContainerRequest {
                container_id: id.to_owned(),
                timeout: grace,
            }),
        )
        .await
        .expect("StopContainer did not return: the guest was not stopped")
        .unwrap();
        self.wait_exited(id, Duration::from_secs(20)).await
    }

    pub(crate) async fn remove(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .stop_container(cri::StopContainerRequest {
                container_id: id.to_owned(),
                timeout: 5,
            })
            .await?;
        self.runtime
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// `StopPodSandbox` alone.
    pub(crate) async fn stop_pod(&mut self, pod: &Pod) -> Result<(), tonic::Status> {
        self.runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await?;
        Ok(())
    }

    /// `StopPodSandbox` then `RemovePodSandbox` (which removes its containers too).
    pub(crate) async fn remove_pod(&mut self, pod: &Pod) -> Result<(), tonic::Status> {
        self.stop_pod(pod).await?;
        self.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await?;
        Ok(())
    }

    /// `PodSandboxStatus`: the pod's network namespace path is in its `info`
    /// (verbose), its IP in `network`.
    pub(crate) async fn pod_status(
        &mut self,
        pod: &Pod,
    ) -> Result<cri::PodSandboxStatusResponse, tonic::Status> {
        Ok(self
            .runtime
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.id.clone(),
                verbose: true,
            })
            .await?
            .into_inner())
    }
}
