// A KIP-848 consumer (kafka-clients 4.x, group.protocol=consumer) subscribed with a
// SubscriptionPattern: the client sends the expression to the broker (SubscribedTopicRegex) and
// consumes whatever the broker assigns, for test_kip848_regex.py. From the earliest offsets, auto
// commit off; one JSON line per event on stdout (logging goes to stderr):
//
//   {"assigned": ["t-0", "u-1"]}   onPartitionsAssigned (topic-partition)
//   {"revoked": ["t-0"]}            onPartitionsRevoked / onPartitionsLost
//   {"msg": ["t", 0, 41]}           a record: [topic, partition, offset]
//   {"closed": true}                consumer.close() returned (leaving heartbeat sent)
//
// SIGTERM makes the poll loop close the consumer.
//
//   java -cp '.deps/java/*:CLASSES' RegexConsumer BOOTSTRAP GROUP REGEX

import java.time.Duration;
import java.util.Collection;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class RegexConsumer {
    private static volatile boolean stopping = false;

    static synchronized void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String partitions(Collection<TopicPartition> parts) {
        return parts.stream().map(tp -> quote(tp.topic() + "-" + tp.partition())).sorted()
                .collect(Collectors.joining(", ", "[", "]"));
    }

    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: RegexConsumer BOOTSTRAP GROUP REGEX");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args[1]);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "1000");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Thread loop = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            consumer.wakeup();
            try {
                loop.join(30_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        try {
            consumer.subscribe(new SubscriptionPattern(args[2]), new ConsumerRebalanceListener() {
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
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    emit("{\"msg\": [" + quote(r.topic()) + ", " + r.partition() + ", "
                            + r.offset() + "]}");
                }
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to close
        } finally {
            consumer.close();
            emit("{\"closed\": true}");
        }
    }
}
