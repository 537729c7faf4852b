// One consumer-group member with the Java client (kafka-clients 4.x), for test_java_groups.py
// (classic group protocol) and test_kip848.py (PROTOCOL=consumer: KIP-848, where STRATEGY is the
// server assignor, "uniform" or "range", or "-" for the broker's default, and SESSION_MS is
// ignored because the broker sets the session timeout). It subscribes to TOPIC in GROUP with auto-commit off, commits
// synchronously after each poll's records are processed, and prints one JSON line per event on
// stdout (logging goes to stderr):
//
//   {"assigned": [0, 3]}     ConsumerRebalanceListener.onPartitionsAssigned (cooperative: added)
//   {"revoked": [0, 3]}      onPartitionsRevoked, and onPartitionsLost
//   {"msg": [3, 41]}         a record processed: [partition, offset]
//   {"commit_failed": "..."} a commit refused (rebalance): the records come again, at least once
//   {"closed": true}         consumer.close() returned, so the LeaveGroup (classic) or the
//                            leaving heartbeat (epoch -1, consumer protocol) has been sent
//
// SIGTERM runs a shutdown hook that calls wakeup() and waits for the poll loop to close the
// consumer, so a terminated member leaves the group instead of waiting out its session.
//
//   java -cp '.deps/java/*:CLASSES' GroupMember BOOTSTRAP TOPIC GROUP STRATEGY SESSION_MS [PROTOCOL]

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class GroupMember {
    private static volatile boolean stopping = false;

    static synchronized void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static String partitions(Collection<TopicPartition> parts) {
        List<Integer> ids = parts.stream().map(TopicPartition::partition).sorted()
                .collect(Collectors.toList());
        return ids.toString();
    }

    static String quote(String s) {
        return "\"" + String.valueOf(s).replace("\\", "\\\\").replace("\"", "\\\"")
                .replace("\n", " ") + "\"";
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5 && args.length != 6) {
            System.err.println(
                    "usage: GroupMember BOOTSTRAP TOPIC GROUP STRATEGY SESSION_MS [classic|consumer]");
            System.exit(2);
        }
        String protocol = args.length == 6 ? args[5] : "classic";
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (protocol.equals("classic")) {
            props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, args[3]);
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args[4]);
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        } else if (!args[3].equals("-")) {
            // The consumer protocol refuses the classic assignment/session settings.
            props.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, args[3]);
        }
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Thread loop = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            consumer.wakeup(); // the one KafkaConsumer method that is safe from another thread
            try {
                loop.join(30_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));

        try {
            consumer.subscribe(List.of(args[1]), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    emit("{\"revoked\": " + partitions(parts) + "}");
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    emit("{\"assigned\": " + partitions(parts) + "}");
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> parts) {
                    emit("{\"revoked\": " + partitions(parts) + "}");
                }
            });
            while (!stopping) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    emit("{\"msg\": [" + r.partition() + ", " + r.offset() + "]}"); // processed
                    next.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1));
                }
                try {
                    consumer.commitSync(next); // only after processing: at least once
                } catch (CommitFailedException | RebalanceInProgressException e) {
                    emit("{\"commit_failed\": " + quote(e.getClass().getSimpleName()) + "}");
                }
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to close
        } finally {
            consumer.close(); // sends LeaveGroup (classic protocol)
            emit("{\"closed\": true}");
        }
    }
}
