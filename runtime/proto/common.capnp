@0xc2a6f1e3d4b59a01;
# Wire schemas for everything that crosses a process boundary in cluster mode.
# Versioned by `protocolVersion`; fields are only ever added, never renumbered.
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("iogrid::proto");

const protocolVersion :UInt32 = 1;

struct Gpu {
  model @0 :Text;
  memoryMib @1 :Int64;
  computeCapability @2 :Float64;
  tflops @3 :Float64;
  verified @4 :Bool;
  freeMilli @5 :Int64;
}

struct KeyValue {
  key @0 :Text;
  value @1 :Text;
}

struct Quantity {
  name @0 :Text;
  milli @1 :Int64;
}

struct ResourceRequest {
  cpusMilli @0 :Int64;
  memoryMib @1 :Int64;
  gpusMilli @2 :Int64;
  gpuModels @3 :List(Text);
  minGpuMemoryMib @4 :Int64;
  minComputeCapability @5 :Float64;
  custom @6 :List(Quantity);
  labels @7 :List(KeyValue);
  node @8 :Text;
  minGpuTflops @9 :Float64;
  allowUnverified @10 :Bool;
  maxPrice @11 :Float64;
  minReputation @12 :Float64;
  preferredRegions @13 :List(Text);
  reservation @14 :UInt64;
  priority @15 :Int32;
  bundle @16 :Int32 = -1;
  avoidNodes @17 :List(Text);
  tier @18 :UInt8 = 1;        # scheduler/pricing.hpp Tier: 0 spot, 1 standard, 2 urgent
}

struct NodeResources {
  cpusMilli @0 :Int64;
  memoryMib @1 :Int64;
  custom @2 :List(Quantity);
}

struct NodeInfo {
  index @0 :UInt32;
  name @1 :Text;
  total @2 :NodeResources;
  available @3 :NodeResources;
  gpus @4 :List(Gpu);
  labels @5 :List(KeyValue);
  pricePerGpuHour @6 :Float64;
  reputation @7 :Float64;
  alive @8 :Bool;
}

# What a GPU is doing (NVML), sent with heartbeats.
struct GpuTelemetry {
  index @0 :UInt32;
  temperatureC @1 :Float32;
  powerW @2 :Float32;
  powerLimitW @3 :Float32;
  utilizationPct @4 :Float32;
  memoryUsedGib @5 :Float32;
  smClockMhz @6 :UInt32;
  memoryClockMhz @7 :UInt32;
}

struct Heartbeat {
  nodeIndex @0 :UInt32;
  sequence @1 :UInt64;
  available @2 :NodeResources;
  gpus @3 :List(Gpu);
  storeUsedBytes @4 :Int64;      # the node's object store
  storeCapacityBytes @5 :Int64;
  storeObjects @6 :Int64;
  spilledBytes @7 :Int64;
  telemetry @8 :List(GpuTelemetry);
  relaySessions @9 :UInt64;      # an operator's relay on this node (`iogrid node --relay`): its figures so far
  relayActive @10 :UInt64;
  relayBytes @11 :UInt64;
  relayRefused @12 :UInt64;
  relayPunches @13 :UInt64;
}

enum TaskKind {
  normal @0;
  actorCreate @1;
  actorCall @2;
}

struct TaskSpec {
  taskId @0 :UInt64;
  kind @1 :TaskKind;
  function @2 :Text;         # registered name
  name @3 :Text;
  args @4 :Data;             # per parameter: tag byte, then inline value or dependency index
  deps @5 :List(UInt64);     # object ids passed by reference
  resultId @6 :UInt64;
  request @7 :ResourceRequest;
  maxRetries @8 :Int32;
  retryExceptions @9 :Bool;
  attempt @10 :Int32;
  actorId @11 :UInt64;
  jobId @12 :Text;
  depValues @13 :List(Data);  # cluster mode: the values of `deps`, in order, when they travel inline
  depLocations @14 :List(ObjectLocation);  # cluster mode: where large deps are pulled from (size 0: inline)
  refs @15 :List(RefInfo);    # ObjectRefs inside the arguments (and inside the deps' values)
}

# An ObjectRef carried inside a value to another process: its id, and its value (inline, or where to pull it).
struct RefInfo {
  id @0 :UInt64;
  value @1 :Data;
  location @2 :ObjectLocation;  # size > 0: pull from there
  error @3 :Text;               # the object failed (or was not ready when sent)
  owned @4 :Bool;               # the receiver becomes its owner (frees it); otherwise it borrows it
}

# Where a large object can be pulled over the data plane.
struct ObjectLocation {
  host @0 :Text;
  port @1 :UInt16;
  key @2 :UInt64;
  size @3 :UInt64;
  nodeIndex @4 :UInt32;
  relay @5 :Text;     # the holder's name at the head's relay ("data-node:N", "data-job:J"): asked for when
                      # host:port cannot be dialled (the holder sits behind a NAT or a firewall); "" none
}

struct ObjectMeta {
  id @0 :UInt64;
  size @1 :UInt64;
  nodeIndex @2 :UInt32;       # where a copy lives
  inlineValue @3 :Data;       # small objects travel with their metadata
  checksum @4 :UInt64;
  contained @5 :List(UInt64);
}

struct JobSpec {
  jobId @0 :Text;
  driverNode @1 :Text;
  codeHash @2 :Text;          # content hash of the driver executable
  args @3 :List(Text);
  user @4 :Text;              # fair share: the user the job belongs to ("default" when empty)
  weight @5 :Float64;         # fair share: the job's weight within its user (0: 1)
}
