@0xee8e6d9cd751e6f2;
# The cluster-mode wire protocol: one Envelope per frame. A frame on a TCP connection is a little-endian
# u32 length followed by that many bytes of a Cap'n Proto flat message. Before a connection has passed the
# token handshake (hello -> challenge -> auth -> welcome) only those envelopes are accepted and frames are
# at most 4 KiB; anything else closes the connection. Fields are only ever added, never renumbered.
using Cxx = import "/capnp/c++.capnp";
using Common = import "common.capnp";
$Cxx.namespace("iogrid::proto");

enum Role {
  node @0;
  driver @1;
  worker @2;
  cli @3;
}

# Client -> server, first frame.
struct Hello {
  protocolVersion @0 :UInt32;
  role @1 :Role;
  name @2 :Text;
  clientNonce @3 :Data;       # 32 random bytes
}

# Server -> client: the server proves it knows the token too (mutual authentication).
struct Challenge {
  protocolVersion @0 :UInt32;
  serverNonce @1 :Data;
  serverProof @2 :Data;       # HMAC-SHA256(token, "server" | clientNonce | serverNonce)
}

struct Auth {
  proof @0 :Data;             # HMAC-SHA256(token, "client" | serverNonce | clientNonce | role | name)
}

struct Welcome {
  serverName @0 :Text;
}

struct Reject {
  reason @0 :Text;
}

struct Allocation {
  nodeIndex @0 :UInt32;
  cpusMilli @1 :Int64;
  memoryMib @2 :Int64;
  custom @3 :List(Common.Quantity);
  gpuDevices @4 :List(UInt32);
  gpuMilli @5 :List(Int64);
}

struct ActiveLease {
  leaseId @0 :UInt64;
  jobId @1 :Text;
  ownerLeaseId @2 :UInt64;
  allocation @3 :Allocation;
}

# node -> head
struct RegisterNode {
  info @0 :Common.NodeInfo;
  host @1 :Text;              # where the node's workers and data plane are reached
  rejoin @2 :Bool;            # the node lost its head and comes back with its running leases
  previousIndex @3 :UInt32;
  previousName @4 :Text;
  activeLeases @5 :List(ActiveLease);
  dataPort @6 :UInt16;        # where its data plane listens (the head dials it back: can it be reached?)
  localHost @7 :Text;         # its own address towards the head (differs from the observed one behind a NAT)
  allowTunnel @8 :List(UInt16);  # local ports its owner lets `iogrid tunnel` reach (cluster/tunnel_ends.hpp)
  relayPort @9 :UInt16;       # its operator marked it a relay (`iogrid node --relay`): its relay listens here
}

# head -> node
struct NodeAccepted {
  nodeIndex @0 :UInt32;
  name @1 :Text;
  heartbeatMs @2 :UInt32;
  observedHost @3 :Text;      # the node's address as the head sees it (advertised for its data plane)
  relayPort @4 :UInt16;       # the relay this node uses; 0: none
  relayHost @5 :Text;         #   at this address; empty: the head's (its own relay)
}

# driver -> head
struct RegisterJob {
  spec @0 :Common.JobSpec;
  ownerHost @1 :Text;         # where leased workers connect to receive the job's tasks
  ownerPort @2 :UInt16;
  codeSize @3 :UInt64;
  parentJob @4 :Text;         # set by a worker that submits nested tasks for its job
  resumeJob @5 :Text;         # a driver reconnecting after losing the head (e.g. a head restart)
  submissionId @6 :Text;      # set when started by `iogrid job submit`, which forwards the driver's output
  localHost @7 :Text;         # its own address towards the head (differs from the observed one behind a NAT)
}

# head -> driver
struct JobAccepted {
  jobId @0 :Text;
  needCode @1 :Bool;          # the head has no copy of this executable yet: it will ask for it (CodeRequest)
  observedHost @2 :Text;      # the driver's address as the head sees it (what nodes will dial)
  relayPort @3 :UInt16;       # the relay this driver uses; 0: none
  relayHost @4 :Text;         #   at this address; empty: the head's (its own relay)
  verifyFraction @5 :Float64; # spot checks of tasks that set no share (iogrid head --verify-fraction)
}

# A job's executable travels in chunks, each asked for by offset (a few in flight), so a large binary never
# holds up the other messages on a connection: the head asks the driver, a node asks the head.
struct Code {
  hash @0 :Text;              # hex SHA-256 of the whole executable
  bytes @1 :Data;             # the chunk at `offset`; empty with `total` 0: the holder has no such code
  offset @2 :UInt64;
  total @3 :UInt64;           # the executable's size
}

struct CodeRequest {
  hash @0 :Text;
  offset @1 :UInt64;
}

# owner -> head
struct LeaseRequest {
  leaseId @0 :UInt64;
  request @1 :Common.ResourceRequest;
}

# head -> owner
struct LeaseFailed {
  leaseId @0 :UInt64;
  reason @1 :Text;
  infeasible @2 :Bool;
  retry @3 :Bool;             # the lease ended on the head's side (node died, worker never started):
                              # an owner still waiting for its worker asks again
}

# head -> owner: fair share; end this lease after the task it runs (ask again if work is left).
struct YieldLease {
  leaseId @0 :UInt64;
}

# head -> node: start (or reuse) a worker process of the job and let it serve the lease.
struct StartLease {
  leaseId @0 :UInt64;
  jobId @1 :Text;
  codeHash @2 :Text;
  ownerHost @3 :Text;
  ownerPort @4 :UInt16;
  allocation @5 :Allocation;
  ownerLeaseId @6 :UInt64;    # the id the owner knows this lease by
  relayTarget @7 :Text;       # set: the owner cannot be dialled; its workers reach it through the head's relay
  relayPort @8 :UInt16;       #   (at the head's address, this port), naming this target
  ownerChecking @9 :Bool;     # with relayTarget: the head is still dialling the owner back: try ownerHost first
}

# node -> worker process
struct ServeLease {
  leaseId @0 :UInt64;
  jobId @1 :Text;
  ownerHost @2 :Text;
  ownerPort @3 :UInt16;
  nodeName @4 :Text;
  nodeIndex @5 :UInt32;
  gpuDevices @6 :List(UInt32);
  ownerLeaseId @7 :UInt64;
  globalLeaseId @8 :UInt64;
  dataHost @9 :Text;          # the node's data plane, where the worker's large results are served from
  dataPort @10 :UInt16;
  gpuFractions @11 :List(UInt32);  # thousandths of each device in gpuDevices
  cpusMilli @12 :UInt32;           # the CPUs the lease holds (thousandths): what a task may run inline on it
  relayTarget @13 :Text;           # set: ownerHost:ownerPort is the head's relay; connect naming this target
  relayHost @14 :Text;             # the head's relay, for objects whose holder cannot be dialled; port 0: none
  relayPort @15 :UInt16;
  directHost @16 :Text;            # with relayTarget: the owner's own address, tried first (the head had not
  directPort @17 :UInt16;          #   finished dialling it back when it granted the lease); port 0: none
}

# head -> a process that cannot be dialled: dial the head's relay (its host, this port) with an ACCEPT line for
# `session`, and serve what comes through as an incoming connection (cluster/relay_server.hpp).
struct RelayDial {
  session @0 :Text;
  port @1 :UInt16;
  data @2 :Bool;              # for the process's data plane (its object store), not its control connection
  tunnelPort @3 :UInt16;      # a node: for a tunnel to this local port (`iogrid tunnel`), not its data plane
  punch @4 :Bool;             # the dialer asked for hole punching: dial ready for it (transport/punch.hpp)
  host @5 :Text;              # the relay is a node's (an operator's relay), at this address; empty: the head's
}

# node (an operator's relay) -> head: someone at this node's relay asks for `target` (a relay name): ask it to
# dial this node's relay with `session`. The head answers RelayRefused when it knows no such target.
struct RelayAsk {
  target @0 :Text;
  session @1 :Text;
  punch @2 :Bool;
}

# head -> node (an operator's relay): no process `session`'s dialer asked for: close it.
struct RelayRefused {
  session @0 :Text;
  reason @1 :Text;
}

# head -> a process: use this relay from now on (the operator's relay it used is gone); port 0: none.
struct UseRelay {
  host @0 :Text;              # empty: the head's address
  port @1 :UInt16;
}

# worker -> owner, right after the handshake: this connection now serves lease `leaseId`.
struct Attach {
  leaseId @0 :UInt64;
  nodeName @1 :Text;
  nodeIndex @2 :UInt32;
  pid @3 :Int32;
}

# owner -> worker
struct Tasks {
  tasks @0 :List(Common.TaskSpec);
}

struct TaskResult {
  taskId @0 :UInt64;
  ok @1 :Bool;
  value @2 :Data;
  error @3 :Text;
  location @4 :Common.ObjectLocation;  # set (size > 0) when the value is large and stays on the node
  lostDep @5 :Common.ObjectLocation;   # set when the task could not pull this argument (its node is gone)
  refs @6 :List(Common.RefInfo);       # ObjectRefs inside the result; the owner of the result takes them over
  # A failure passed on from a task this one depended on (it did not catch the TaskError of a get): the root
  # task, its node and message, and the tasks it passed through, this one included.
  rootTask @7 :Text;
  rootNode @8 :Text;
  rootMessage @9 :Text;
  through @10 :UInt32;
}

# worker -> node: adopt the large value written to `path` (a file in shared memory) into the node's store.
struct StoreObject {
  requestId @0 :UInt64;
  path @1 :Text;
  size @2 :UInt64;
  jobId @3 :Text;
}

# node -> worker
struct ObjectStored {
  requestId @0 :UInt64;
  key @1 :UInt64;
  error @2 :Text;
}

# worker -> owner
struct Results {
  results @0 :List(TaskResult);
}

# owner -> worker: the lease is over (after the last result came back).
struct EndLease {
  leaseId @0 :UInt64;
}

# worker -> node (lease over, worker idle again); node -> head (resources back).
struct LeaseDone {
  leaseId @0 :UInt64;
}

# head -> nodes: the job's driver has gone; stop its workers.
struct JobEnded {
  jobId @0 :Text;
  reason @1 :Text;
}

struct StatusRequest {
  dummy @0 :Bool;
}

struct NodeStatus {
  info @0 :Common.NodeInfo;
  host @1 :Text;
  workers @2 :UInt32;
  activeLeases @3 :UInt32;
  lastHeartbeatMs @4 :UInt64;  # ago
  storeUsedBytes @5 :Int64;
  storeCapacityBytes @6 :Int64;
  storeObjects @7 :Int64;
  spilledBytes @8 :Int64;
  directoryObjects @9 :UInt64;   # copies the head's object directory lists on this node
  directoryBytes @10 :UInt64;
  verification @11 :Text;        # the last verification's verdict, or empty
  telemetry @12 :List(Common.GpuTelemetry);
  observedAddress @13 :Text;     # host:port the head sees its connection come from
  localHost @14 :Text;           # the address it has itself
  path @15 :Text;                # public, nat, firewalled or checking (transport/reachability.hpp)
  inbound @16 :Text;             # open, closed or unknown: the head's dial-back to its data port
}

struct JobStatus {
  jobId @0 :Text;
  driver @1 :Text;
  state @2 :Text;              # running, finished, failed
  leasesGranted @3 :UInt64;
  activeLeases @4 :UInt32;
  startedUnixMs @5 :UInt64;
  endedUnixMs @6 :UInt64;
  tasksJson @7 :Text;      # the job's tasks by kind and state, summed over its owners (TaskBook::summary); "" none
  driverReach @8 :Text;    # can workers dial its driver: public, nat, firewalled, checking ("" unknown)
}

struct StatusReply {
  nodes @0 :List(NodeStatus);
  jobs @1 :List(JobStatus);
  pendingLeases @2 :UInt32;
  headName @3 :Text;
  deadNodes @4 :UInt32;
  usersJson @5 :Text;      # fair share per user: [{user, weight, jobs, leases, cpus, gpus, waiting, share, fair_share}]
  relayJson @6 :Text;      # the head's relay: {port, sessions, active, refused, bytes}; "" none
  checksJson @7 :Text;     # spot checks: {"verdicts": {verdict: n}, "nodes": {name: {passed, failed}}}; "" none
}

struct KvPut {
  key @0 :Text;
  value @1 :Data;
}

struct KvGet {
  requestId @0 :UInt64;
  key @1 :Text;
}

struct KvValue {
  requestId @0 :UInt64;
  found @1 :Bool;
  value @2 :Data;
}

# cli -> head: stop a job (its driver is told, then its workers are stopped).
struct StopJob {
  jobId @0 :Text;
}

# head -> owners: a node was declared dead; leases there are lost.
struct NodeDead {
  nodeIndex @0 :UInt32;
  name @1 :Text;
  reason @2 :Text;
}

# worker -> node -> head: the task holding this lease waits in get/wait (blocked) or resumed; while it waits
# its CPUs are lent to other work, so nested task graphs cannot deadlock a full cluster.
struct LeaseBlocked {
  leaseId @0 :UInt64;         # the head's id
  blocked @1 :Bool;
}

# cli (job submit) or node -> head: output of a job's driver or workers.
struct JobLog {
  jobId @0 :Text;             # empty: look up by submissionId
  submissionId @1 :Text;
  text @2 :Data;
}

struct JobLogsRequest {
  jobId @0 :Text;
}

struct JobLogsReply {
  jobId @0 :Text;
  found @1 :Bool;
  text @2 :Data;
}

# node -> head: the object directory (which node holds which large object).
struct ObjectsAdded {
  keys @0 :List(UInt64);
  sizes @1 :List(UInt64);
  jobId @2 :Text;
}

struct ObjectsRemoved {
  keys @0 :List(UInt64);
}

# GPU verification (gpu/verify/challenge.hpp): head -> node a seeded GEMM; node -> head its time and a Merkle
# root over C's rows; head -> node the rows it wants, drawn only then; node -> head those rows with their paths.
struct VerifyChallenge {
  id @0 :UInt64;
  seed @1 :UInt64;
  n @2 :UInt32;
  device @3 :UInt32;
}

struct VerifyCommit {
  id @0 :UInt64;
  root @1 :Data;
  seconds @2 :Float64;
  error @3 :Text;      # set when the node could not run it
}

struct VerifyOpen {
  id @0 :UInt64;
  rows @1 :List(UInt32);
}

struct OpenedRow {
  row @0 :UInt32;
  values @1 :List(Float32);
  path @2 :List(Data);
}

struct VerifyRows {
  id @0 :UInt64;
  rows @1 :List(OpenedRow);
}

# cli/driver -> head: an operator command (reservations, ledger); arguments and answer are JSON text
# (see runtime/head/reservations.hpp for the commands).
struct AdminRequest {
  requestId @0 :UInt64;
  command @1 :Text;
  args @2 :Text;
}

struct AdminReply {
  requestId @0 :UInt64;
  ok @1 :Bool;
  body @2 :Text;     # JSON when ok
  error @3 :Text;    # the reason when not
}

# driver or nested owner -> head, each second while they change: its tasks as it sees them (JSON of
# runtime/task_stats.hpp's snapshot: counts, duration histogram, the spans ended since the last report, failures).
struct TaskReport {
  json @0 :Text;
}

struct Envelope {
  union {
    hello @0 :Hello;
    challenge @1 :Challenge;
    auth @2 :Auth;
    welcome @3 :Welcome;
    reject @4 :Reject;
    registerNode @5 :RegisterNode;
    nodeAccepted @6 :NodeAccepted;
    heartbeat @7 :Common.Heartbeat;
    registerJob @8 :RegisterJob;
    jobAccepted @9 :JobAccepted;
    code @10 :Code;
    codeRequest @11 :CodeRequest;
    leaseRequest @12 :LeaseRequest;
    leaseFailed @13 :LeaseFailed;
    startLease @14 :StartLease;
    serveLease @15 :ServeLease;
    attach @16 :Attach;
    tasks @17 :Tasks;
    results @18 :Results;
    endLease @19 :EndLease;
    leaseDone @20 :LeaseDone;
    jobEnded @21 :JobEnded;
    statusRequest @22 :StatusRequest;
    statusReply @23 :StatusReply;
    kvPut @24 :KvPut;
    kvGet @25 :KvGet;
    kvValue @26 :KvValue;
    stopJob @27 :StopJob;
    nodeDead @28 :NodeDead;
    storeObject @29 :StoreObject;
    objectStored @30 :ObjectStored;
    leaseBlocked @31 :LeaseBlocked;
    jobLog @32 :JobLog;
    jobLogsRequest @33 :JobLogsRequest;
    jobLogsReply @34 :JobLogsReply;
    objectsAdded @35 :ObjectsAdded;
    objectsRemoved @36 :ObjectsRemoved;
    adminRequest @37 :AdminRequest;
    adminReply @38 :AdminReply;
    verifyChallenge @39 :VerifyChallenge;
    verifyCommit @40 :VerifyCommit;
    verifyOpen @41 :VerifyOpen;
    verifyRows @42 :VerifyRows;
    yieldLease @43 :YieldLease;
    taskReport @44 :TaskReport;
    relayDial @45 :RelayDial;
    relayAsk @46 :RelayAsk;
    relayRefused @47 :RelayRefused;
    useRelay @48 :UseRelay;
  }
}
