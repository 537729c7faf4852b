// Command txncopy drives franz-go's transactions (kgo) against a broker, for
// tests/clients/test_franz_go.py. It has two modes:
//
//	txncopy produce -brokers B -txn-id ID -topic T -partitions P -records R \
//	        -txn-records N -abort-share F -seed S
//
// writes R records ("r0", "r1", ...; record i to partition i % P) with a transactional
// producer, N records per transaction, and ends each transaction with a commit, or, for a
// seeded share F of them, an abort after the records were flushed (so they are in the log).
//
//	txncopy copy -brokers B -txn-id ID -group G -input IN -output OUT -records R \
//	        -max-poll N -abort-share F -seed S [-group-protocol classic|consumer]
//
// copies IN to OUT with a GroupTransactSession: read_committed input, a consumer group, at
// most N records per transaction, each copy written to the input record's partition with the
// input value and the key "PARTITION:OFFSET" of the input record, the consumed offsets
// committed inside the transaction. A seeded share F of its transactions is aborted after the
// copies were flushed; the session then rewinds to the group's committed offsets and the
// records are copied again. It stops after the first commit that brings the copies committed
// by this run to R or more.
//
// Either mode prints one JSON line to stdout when done (see produceSummary, copySummary),
// among it the requests the client wrote by name and version ("EndTxn v5": 12), taken from
// kgo's debug log. The client's log at info level and above goes to stderr. Any unexpected
// error, or the -timeout passing, exits 1 with a message; bad usage exits 2.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// position is one record as the client saw it produced or consumed.
type position struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

type produceSummary struct {
	Transactions int            `json:"transactions"`
	Aborts       int            `json:"aborts"`
	Committed    []position     `json:"committed"`
	Aborted      []position     `json:"aborted"`
	Requests     map[string]int `json:"requests"`
}

type copySummary struct {
	// Copied counts the copies of committed transactions, AbortedRecords those of the
	// deliberately aborted ones, RefusedRecords those of transactions the session aborted
	// although a commit was asked for (a rebalance, an abortable offset commit error).
	Copied         int            `json:"copied"`
	Commits        int            `json:"commits"`
	Aborts         int            `json:"aborts"`
	AbortedRecords int            `json:"aborted_records"`
	Refused        int            `json:"refused"`
	RefusedRecords int            `json:"refused_records"`
	Requests       map[string]int `json:"requests"`
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "produce" && os.Args[1] != "copy") {
		badUsage("usage: txncopy produce|copy -flags (see the package doc)")
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap servers, comma separated")
	txnID := fs.String("txn-id", "", "transactional id")
	records := fs.Int("records", 0, "produce: records to write; copy: copies to commit")
	abortShare := fs.Float64("abort-share", 0.25, "share of transactions aborted on purpose")
	seed := fs.Uint64("seed", 1, "seed of the abort choice")
	timeout := fs.Duration("timeout", 45*time.Second, "give up (exit 1) after this long")
	topic := fs.String("topic", "", "produce: the topic")
	partitions := fs.Int("partitions", 1, "produce: partitions of the topic")
	txnRecords := fs.Int("txn-records", 40, "produce: records per transaction")
	group := fs.String("group", "", "copy: consumer group")
	input := fs.String("input", "", "copy: input topic")
	output := fs.String("output", "", "copy: output topic")
	maxPoll := fs.Int("max-poll", 50, "copy: most records per transaction")
	groupProtocol := fs.String("group-protocol", "classic", "copy: classic or consumer (KIP-848)")
	_ = fs.Parse(os.Args[2:])
	if *txnID == "" || *records <= 0 {
		badUsage("-txn-id and -records are required")
	}

	log := newClientLog()
	base := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.TransactionalID(*txnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.WithLogger(log),
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rng := rand.New(rand.NewPCG(*seed, 0))
	abort := func() bool { return rng.Float64() < *abortShare }

	var summary any
	if mode == "produce" {
		if *topic == "" || *partitions <= 0 || *txnRecords <= 0 {
			badUsage("produce needs -topic, -partitions and -txn-records")
		}
		opts := append(base, kgo.DefaultProduceTopic(*topic))
		s := runProduce(ctx, opts, *records, *partitions, *txnRecords, abort)
		s.Requests = log.requests()
		summary = s
	} else {
		if *group == "" || *input == "" || *output == "" || *maxPoll <= 0 {
			badUsage("copy needs -group, -input, -output and -max-poll")
		}
		opts := append(base, consumerOpts(*group, *input, *groupProtocol)...)
		s := runCopy(ctx, opts, *output, *records, *maxPoll, abort)
		s.Requests = log.requests()
		summary = s
	}
	out, err := json.Marshal(summary)
	if err != nil {
		fail("encoding the summary: %v", err)
	}
	fmt.Println(string(out))
}

// consumerOpts: a read_committed member of group consuming input from its start (or from the
// group's committed offsets), in a classic or a KIP-848 group.
func consumerOpts(group, input, protocol string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
	switch protocol {
	case "classic":
	case "consumer":
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
	default:
		badUsage("-group-protocol is classic or consumer, not %q", protocol)
	}
	return opts
}

func runProduce(ctx context.Context, opts []kgo.Opt, records, partitions, txnRecords int,
	abort func() bool) *produceSummary {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fail("client: %v", err)
	}
	defer cl.Close()
	s := &produceSummary{Committed: []position{}, Aborted: []position{}}
	for first := 0; first < records; first += txnRecords {
		if err := cl.BeginTransaction(); err != nil {
			fail("begin transaction %d: %v", s.Transactions, err)
		}
		batch := make([]*kgo.Record, min(txnRecords, records-first))
		for i := range batch {
			batch[i] = &kgo.Record{
				Partition: int32((first + i) % partitions),
				Value:     fmt.Appendf(nil, "r%d", first+i),
			}
		}
		placed := produceAll(ctx, cl, batch)
		commit := !abort()
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			fail("end transaction %d (commit %v): %v", s.Transactions, commit, err)
		}
		s.Transactions++
		if commit {
			s.Committed = append(s.Committed, placed...)
		} else {
			s.Aborts++
			s.Aborted = append(s.Aborted, placed...)
		}
	}
	return s
}

func runCopy(ctx context.Context, opts []kgo.Opt, output string, records, maxPoll int,
	abort func() bool) *copySummary {
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		fail("session: %v", err)
	}
	defer sess.Close()
	s := &copySummary{}
	for s.Copied < records {
		in := poll(ctx, sess, maxPoll, s)
		if len(in) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			fail("begin: %v", err)
		}
		copies := make([]*kgo.Record, len(in))
		for i, r := range in {
			copies[i] = &kgo.Record{
				Topic:     output,
				Partition: r.Partition,
				Key:       fmt.Appendf(nil, "%d:%d", r.Partition, r.Offset),
				Value:     r.Value,
			}
		}
		// Flushed before End in both cases: aborted copies are then in the log too.
		produceAll(ctx, sess.Client(), copies)
		commit := !abort()
		committed, err := sess.End(ctx, kgo.TransactionEndTry(commit))
		if err != nil {
			fail("end (commit %v) after %d copies: %v", commit, s.Copied, err)
		}
		switch {
		case committed:
			s.Commits++
			s.Copied += len(copies)
		case !commit:
			s.Aborts++
			s.AbortedRecords += len(copies)
		default:
			s.Refused++
			s.RefusedRecords += len(copies)
		}
	}
	return s
}

// poll returns the next records of the session, none after a second without any; it fails
// once ctx is done.
func poll(ctx context.Context, sess *kgo.GroupTransactSession, maxPoll int,
	s *copySummary) []*kgo.Record {
	if ctx.Err() != nil {
		fail("timed out after %d copies committed: %+v", s.Copied, *s)
	}
	pollCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	fetches := sess.PollRecords(pollCtx, maxPoll)
	if fetches.IsClientClosed() {
		fail("client closed while polling")
	}
	for _, fe := range fetches.Errors() {
		if !errors.Is(fe.Err, context.DeadlineExceeded) {
			fail("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
	}
	return fetches.Records()
}

// produceAll produces rs and waits for all of them; it fails on any produce error.
func produceAll(ctx context.Context, cl *kgo.Client, rs []*kgo.Record) []position {
	placed := make([]position, len(rs))
	var mu sync.Mutex
	var firstErr error
	for i, r := range rs {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			placed[i] = position{r.Partition, r.Offset, string(r.Value)}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		fail("flush: %v", err)
	}
	if firstErr != nil {
		fail("produce: %v", firstErr)
	}
	return placed
}

// clientLog passes kgo's log at info level and above to stderr and counts, from the debug
// lines "wrote <Request> v<N>", the requests the client wrote successfully.
type clientLog struct {
	stderr kgo.Logger
	mu     sync.Mutex
	sent   map[string]int
}

func newClientLog() *clientLog {
	return &clientLog{stderr: kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string {
		return time.Now().Format("15:04:05.000 ")
	}), sent: map[string]int{}}
}

func (l *clientLog) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (l *clientLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level != kgo.LogLevelDebug {
		l.stderr.Log(level, msg, keyvals...)
		return
	}
	req, ok := strings.CutPrefix(msg, "wrote ")
	if !ok {
		return
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "err" && keyvals[i+1] != nil {
			return
		}
	}
	l.mu.Lock()
	l.sent[req]++
	l.mu.Unlock()
}

func (l *clientLog) requests() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.sent))
	for k, v := range l.sent {
		out[k] = v
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "txncopy: "+format+"\n", args...)
	os.Exit(1)
}

func badUsage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "txncopy: "+format+"\n", args...)
	os.Exit(2)
}
