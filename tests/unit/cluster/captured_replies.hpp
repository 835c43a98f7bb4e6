// Replies captured from a real redis-server 7.0.15 cluster on loopback (test data).
//
// Cluster: six `redis-server --cluster-enabled yes` nodes on ports 17001..17006, created with
// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`: masters 17001 (0-5460),
// 17002 (5461-10922), 17003 (10923-16383); replicas 17006, 17004, 17005. Each reply is the raw
// bytes read from 17001 after sending the command, then after HELLO 3.
//
// The moved_* replies were taken after moving slot 100 to 17002 (CLUSTER SETSLOT ... NODE),
// `CONFIG SET cluster-announce-hostname shard-b.example` on 17002,
// `CONFIG SET cluster-preferred-endpoint-type hostname` on 17001 (so other nodes' endpoints are
// "?"), and `SHUTDOWN NOSAVE` of replica 17006 (health "fail", absent from CLUSTER SLOTS).
#pragma once

#include <string_view>

namespace captured {

// CLUSTER SHARDS, RESP2.
inline constexpr std::string_view shards_resp2 =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n"
    "$40\r\ne9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n$4\r\nport\r\n:17001\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n"
    "$40\r\n5313d3d0cb7d2925e50ca6668f026579f623fc73\r\n$4\r\nport\r\n:17006\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
    "*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n$4\r\nport\r\n:17002\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "d861bdd060fec439a081da7b6016fc9f2c61305c\r\n$4\r\nport\r\n:17004\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n"
    ":10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n$4\r\nport\r\n:17003\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n$4\r\nport\r\n:17005\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

// CLUSTER SHARDS, RESP3.
inline constexpr std::string_view shards_resp3 =
    "*3\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n%7\r\n$2\r\nid\r\n"
    "$40\r\ne9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n$4\r\nport\r\n:17001\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:28\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n"
    "$40\r\n5313d3d0cb7d2925e50ca6668f026579f623fc73\r\n$4\r\nport\r\n:17006\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
    "$18\r\nreplication-offset\r\n:28\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%2\r\n$5\r\nslots\r\n"
    "*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n$4\r\nport\r\n:17002\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:28\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "d861bdd060fec439a081da7b6016fc9f2c61305c\r\n$4\r\nport\r\n:17004\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:28\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%2\r\n$5\r\nslots\r\n*2\r\n"
    ":10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n$4\r\nport\r\n:17003\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n$4\r\nport\r\n:17005\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

// CLUSTER SLOTS, RESP2.
inline constexpr std::string_view slots_resp2 =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:17001\r\n$40\r\n"
    "e9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:17006\r\n$40\r\n"
    "5313d3d0cb7d2925e50ca6668f026579f623fc73\r\n*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:17002\r\n$40\r\nbbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n*0\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:17004\r\n$40\r\nd861bdd060fec439a081da7b6016fc9f2c61305c\r\n*0\r\n*4\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:17003\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:17005\r\n$40\r\n"
    "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n*0\r\n";

// CLUSTER SLOTS, RESP3.
inline constexpr std::string_view slots_resp3 =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:17001\r\n$40\r\n"
    "e9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n%0\r\n*4\r\n$9\r\n127.0.0.1\r\n:17006\r\n$40\r\n"
    "5313d3d0cb7d2925e50ca6668f026579f623fc73\r\n%0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:17002\r\n$40\r\nbbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n%0\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:17004\r\n$40\r\nd861bdd060fec439a081da7b6016fc9f2c61305c\r\n%0\r\n*4\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:17003\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n%0\r\n*4\r\n$9\r\n127.0.0.1\r\n:17005\r\n$40\r\n"
    "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n%0\r\n";

// CLUSTER SHARDS, RESP2.
inline constexpr std::string_view moved_shards_resp2 =
    "*3\r\n*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:101\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n"
    "$2\r\nid\r\n$40\r\ne9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n$4\r\nport\r\n:17001\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:28\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n"
    "$40\r\n5313d3d0cb7d2925e50ca6668f026579f623fc73\r\n$4\r\nport\r\n:17006\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:28\r\n$6\r\nhealth\r\n$4\r\nfail\r\n*4\r\n$5\r\nslots\r\n*4\r\n"
    ":100\r\n:100\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*16\r\n$2\r\nid\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n$4\r\nport\r\n:17002\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$15\r\nshard-b.example\r\n$8\r\nhostname\r\n$15\r\n"
    "shard-b.example\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\n"
    "health\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "d861bdd060fec439a081da7b6016fc9f2c61305c\r\n$4\r\nport\r\n:17004\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n"
    ":10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n$4\r\nport\r\n:17003\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n$4\r\nport\r\n:17005\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

// CLUSTER SHARDS, RESP3.
inline constexpr std::string_view moved_shards_resp3 =
    "*3\r\n%2\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:101\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n%7\r\n"
    "$2\r\nid\r\n$40\r\ne9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n$4\r\nport\r\n:17001\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:28\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n"
    "$40\r\n5313d3d0cb7d2925e50ca6668f026579f623fc73\r\n$4\r\nport\r\n:17006\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:28\r\n$6\r\nhealth\r\n$4\r\nfail\r\n%2\r\n$5\r\nslots\r\n*4\r\n"
    ":100\r\n:100\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n%8\r\n$2\r\nid\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n$4\r\nport\r\n:17002\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$15\r\nshard-b.example\r\n$8\r\nhostname\r\n$15\r\n"
    "shard-b.example\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\n"
    "health\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "d861bdd060fec439a081da7b6016fc9f2c61305c\r\n$4\r\nport\r\n:17004\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%2\r\n$5\r\nslots\r\n*2\r\n"
    ":10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n$4\r\nport\r\n:17003\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n$40\r\n"
    "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n$4\r\nport\r\n:17005\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

// CLUSTER SLOTS, RESP2.
inline constexpr std::string_view moved_slots_resp2 =
    "*5\r\n*3\r\n:0\r\n:99\r\n*4\r\n$1\r\n?\r\n:17001\r\n$40\r\n"
    "e9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    ":100\r\n:100\r\n*4\r\n$15\r\nshard-b.example\r\n:17002\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:17004\r\n$40\r\nd861bdd060fec439a081da7b6016fc9f2c61305c\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*3\r\n:101\r\n:5460\r\n*4\r\n$1\r\n?\r\n:17001\r\n$40\r\n"
    "e9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    ":5461\r\n:10922\r\n*4\r\n$15\r\nshard-b.example\r\n:17002\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:17004\r\n$40\r\nd861bdd060fec439a081da7b6016fc9f2c61305c\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$1\r\n?\r\n:17003\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:17005\r\n$40\r\nfe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n";

// CLUSTER SLOTS, RESP3.
inline constexpr std::string_view moved_slots_resp3 =
    "*5\r\n*3\r\n:0\r\n:99\r\n*4\r\n$1\r\n?\r\n:17001\r\n$40\r\n"
    "e9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n%1\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    ":100\r\n:100\r\n*4\r\n$15\r\nshard-b.example\r\n:17002\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n%1\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:17004\r\n$40\r\nd861bdd060fec439a081da7b6016fc9f2c61305c\r\n%1\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*3\r\n:101\r\n:5460\r\n*4\r\n$1\r\n?\r\n:17001\r\n$40\r\n"
    "e9c762b6e17bfc7fd350f6270f143823abcd47b5\r\n%1\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    ":5461\r\n:10922\r\n*4\r\n$15\r\nshard-b.example\r\n:17002\r\n$40\r\n"
    "bbde975204be1bc9d74fcf7bf91a12ba66460a34\r\n%1\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:17004\r\n$40\r\nd861bdd060fec439a081da7b6016fc9f2c61305c\r\n%1\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$1\r\n?\r\n:17003\r\n$40\r\n"
    "55b2e2708c27070c0f33419065e9c28fe1fe4954\r\n%1\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:17005\r\n$40\r\nfe28eca0162a0bb3aab032b80e33a2e7fc5327f2\r\n%1\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n";

}  // namespace captured
