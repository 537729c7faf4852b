// An exactly-once consume-transform-produce loop with the Java client (kafka-clients 4.x), for
// test_java_transactions.py. It copies every record of INPUT to OUTPUT inside transactions: the
// copy has the input's partition, the value "out-" + the input value and the key
// "PARTITION:OFFSET" of the input record, and the input offsets are committed to GROUP in the same
// transaction (sendOffsetsToTransaction with the consumer's group metadata, KIP-447). A seeded
// share of the transactions is aborted on purpose, after a flush, so that their copies are in the
// log but never committed. It stops once GROUP's committed offsets cover EXPECTED input records.
// With PAUSE_AT, the first transaction begun once PAUSE_AT records are committed is held open
// after its copies and offsets are written (and is not aborted on purpose): the copier prints
// "paused" and waits for a line on stdin before it commits, so that a test can kill and restart
// the broker under an open transaction.
//
// The broker may be killed and restarted under it. An error inside a transaction aborts it; when
// the producer cannot abort (a commit whose outcome is unknown, a fatal state) it is closed and a
// new producer with the same transactional id takes over, which completes or aborts whatever the
// old one left. Either way the consumer rewinds to the group's committed offsets (a stable read:
// read_committed makes the consumer ask with require_stable) and copies from there again.
//
// stdout, one line per event (the client's log goes to stderr):
//
//   producer 2                   a producer initialised with the transactional id (the n-th)
//   committing                   commitTransaction is about to be called
//   committed 1200               a commit: the group's offsets now cover 1200 input records
//   aborted 40                   a deliberate abort, after 40 copies were written
//   paused                       the PAUSE_AT transaction is open, waiting for a stdin line
//   error TimeoutException: ...  an exception the loop recovered from
//   done commits=.. aborts=.. aborted_records=.. errors=.. producers=..
//
// Exit codes: 0 done, 2 usage, 3 fenced (no one else holds the id, so the broker is wrong),
// 4 the deadline passed first.
//
//   java -cp '.deps/java/*:CLASSES' TxnCopier BOOTSTRAP INPUT OUTPUT GROUP TXN_ID EXPECTED \
//        ABORT_PROBABILITY SEED [PAUSE_AT]

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class TxnCopier {
    // Small transactions, so that a run has enough of them for the broker to die mid-run.
    static final int MAX_POLL_RECORDS = 50;
    static final long DEADLINE_MS = 100_000;
    static final String API_TIMEOUT_MS = "60000";

    final String bootstrap;
    final String input;
    final String output;
    final String txnId;
    final long deadline = System.currentTimeMillis() + DEADLINE_MS;
    final Map<TopicPartition, Long> committed = new HashMap<>();
    KafkaConsumer<byte[], byte[]> consumer;
    KafkaProducer<byte[], byte[]> producer;
    List<TopicPartition> inputPartitions;
    long pauseAt = -1;
    boolean inTransaction;
    int commits, aborts, abortedRecords, errors, producers;

    TxnCopier(String bootstrap, String input, String output, String txnId) {
        this.bootstrap = bootstrap;
        this.input = input;
        this.output = output;
        this.txnId = txnId;
    }

    public static void main(String[] args) {
        if (args.length != 8 && args.length != 9) {
            System.err.println("usage: TxnCopier BOOTSTRAP INPUT OUTPUT GROUP TXN_ID EXPECTED "
                    + "ABORT_PROBABILITY SEED [PAUSE_AT]");
            System.exit(2);
        }
        TxnCopier copier = new TxnCopier(args[0], args[1], args[2], args[4]);
        long expected = Long.parseLong(args[5]);
        double abortProbability = Double.parseDouble(args[6]);
        Random random = new Random(Long.parseLong(args[7]));
        if (args.length == 9) {
            copier.pauseAt = Long.parseLong(args[8]);
        }
        copier.consumer = newConsumer(args[0], args[3]);
        copier.consumer.subscribe(List.of(args[1]));
        copier.newProducer();
        int code = copier.run(expected, abortProbability, random);
        copier.close();
        System.exit(code);
    }

    int run(long expected, double abortProbability, Random random) {
        while (committedTotal() < expected) {
            if (System.currentTimeMillis() > deadline) {
                emit("timeout committed=" + committedTotal() + " " + summary());
                return 4;
            }
            try {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                boolean abort = random.nextDouble() < abortProbability;
                boolean pause = pauseAt >= 0 && committedTotal() >= pauseAt;
                if (pause) {
                    pauseAt = -1;
                }
                copy(records, abort && !pause, pause);
            } catch (ProducerFencedException e) {
                emit("fenced " + describe(e));
                return 3;
            } catch (KafkaException e) {
                errors++;
                emit("error " + describe(e));
                try {
                    recover();
                } catch (ProducerFencedException fenced) {
                    emit("fenced " + describe(fenced));
                    return 3;
                }
            }
        }
        emit("done " + summary());
        return 0;
    }

    /** One transaction: the copies of {@code records} and the input offsets after them. */
    void copy(ConsumerRecords<byte[], byte[]> records, boolean abort, boolean pause) {
        producer.beginTransaction();
        inTransaction = true;
        Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
        AtomicInteger acked = new AtomicInteger();
        for (ConsumerRecord<byte[], byte[]> r : records) {
            byte[] key = (r.partition() + ":" + r.offset()).getBytes(StandardCharsets.UTF_8);
            byte[] value = concat("out-".getBytes(StandardCharsets.UTF_8), r.value());
            producer.send(new ProducerRecord<>(output, r.partition(), key, value),
                    (metadata, e) -> {
                        if (e == null) {
                            acked.incrementAndGet();
                        }
                    });
            next.put(new TopicPartition(r.topic(), r.partition()),
                    new OffsetAndMetadata(r.offset() + 1));
        }
        producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
        if (abort) {
            // The copies reach the log first, where read_uncommitted sees them; flush returns
            // after every send's callback has run, so acked counts the ones written.
            producer.flush();
            producer.abortTransaction();
            inTransaction = false;
            aborts++;
            abortedRecords += acked.get();
            emit("aborted " + acked.get());
            rewind();
            return;
        }
        if (pause) {
            producer.flush();
            emit("paused");
            awaitLine();
        }
        emit("committing");
        producer.commitTransaction();
        inTransaction = false;
        commits++;
        next.forEach((tp, om) -> committed.put(tp, om.offset()));
        emit("committed " + committedTotal());
    }

    /**
     * After a failed transaction: abort it if the producer can, else replace the producer (a new
     * one with the same transactional id fences the old epoch and ends its transaction); then
     * rewind to the committed offsets. Retried until the deadline while the broker is away;
     * a fenced producer is not retried but thrown.
     */
    void recover() {
        boolean aborted = !inTransaction;
        if (inTransaction) {
            try {
                producer.abortTransaction();
                aborted = true;
            } catch (KafkaException e) {
                emit("error abort: " + describe(e));
            }
        }
        while (System.currentTimeMillis() < deadline) {
            try {
                if (!aborted) {
                    producer.close(Duration.ZERO);
                    newProducer();
                    aborted = true;
                }
                inTransaction = false;
                rewind();
                return;
            } catch (ProducerFencedException e) {
                throw e;
            } catch (KafkaException e) {
                errors++;
                emit("error recover: " + describe(e));
            }
        }
    }

    /** Seeks every assigned input partition back to the group's committed offset. */
    void rewind() {
        if (inputPartitions == null) {
            inputPartitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(input)) {
                inputPartitions.add(new TopicPartition(input, p.partition()));
            }
        }
        Map<TopicPartition, OffsetAndMetadata> offsets =
                consumer.committed(new HashSet<>(inputPartitions));
        for (TopicPartition tp : inputPartitions) {
            OffsetAndMetadata om = offsets.get(tp);
            committed.put(tp, om == null ? 0L : om.offset());
            if (!consumer.assignment().contains(tp)) {
                continue; // a rebalance will position it from the committed offset
            }
            if (om == null) {
                consumer.seekToBeginning(List.of(tp));
            } else {
                consumer.seek(tp, om);
            }
        }
    }

    void newProducer() {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, API_TIMEOUT_MS);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
                ByteArraySerializer.class.getName());
        producer = new KafkaProducer<>(props);
        producers++;
        producer.initTransactions();
        emit("producer " + producers);
    }

    static KafkaConsumer<byte[], byte[]> newConsumer(String bootstrap, String group) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(MAX_POLL_RECORDS));
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, API_TIMEOUT_MS);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG,
                ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
                ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(props);
    }

    void close() {
        producer.close(Duration.ofSeconds(10));
        consumer.close(CloseOptions.timeout(Duration.ofSeconds(10)));
    }

    long committedTotal() {
        return committed.values().stream().mapToLong(Long::longValue).sum();
    }

    String summary() {
        return "commits=" + commits + " aborts=" + aborts + " aborted_records=" + abortedRecords
                + " errors=" + errors + " producers=" + producers;
    }

    static String describe(Exception e) {
        String text = e.getClass().getSimpleName() + ": " + e.getMessage();
        if (e.getCause() != null && e.getCause() != e) {
            text += " (cause " + e.getCause().getClass().getSimpleName() + ": "
                    + e.getCause().getMessage() + ")";
        }
        return text.replace("\n", " ");
    }

    static void awaitLine() {
        try {
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = new byte[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    static void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
