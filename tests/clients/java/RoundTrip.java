// Produces N keyed records with the Java client (acks=all, idempotence) and reads them back with
// assign + seekToBeginning, checking offsets, order, keys, values, headers and timestamps.
// Exit code: 0 all matched, 1 mismatch, 2 usage or client error.
//
//   java -cp '.deps/java/*:CLASSES' RoundTrip BOOTSTRAP TOPIC COUNT PARTITIONS COMPRESSION \
//       [CLIENT_PROPS]
//
// PARTITIONS > 1 creates the topic with the AdminClient first; 1 relies on auto-creation.
// CLIENT_PROPS: a properties file (security.protocol, sasl.*, ssl.* ...) that the admin client,
// the producer and the consumer all start from.

import java.io.FileReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class RoundTrip {
    private static final long BASE_TS_MS = 1_730_000_000_000L;
    private static final long DEADLINE_MS = 60_000;
    /** The CLIENT_PROPS file's settings, or none. */
    private static final Properties BASE = new Properties();

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Exception e) {
            // a client error (timeout, refused request) is not a content mismatch
            e.printStackTrace();
            System.exit(2);
        }
    }

    static void run(String[] args) throws Exception {
        if (args.length != 5 && args.length != 6) {
            System.err.println(
                    "usage: RoundTrip BOOTSTRAP TOPIC COUNT PARTITIONS COMPRESSION [CLIENT_PROPS]");
            System.exit(2);
        }
        if (args.length == 6) {
            try (Reader r = new FileReader(args[5], StandardCharsets.UTF_8)) {
                BASE.load(r);
            }
        }
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        int partitions = Integer.parseInt(args[3]);
        String compression = args[4];

        if (partitions > 1) {
            createTopic(bootstrap, topic, partitions);
        }
        RecordMetadata[] sent = produce(bootstrap, topic, count, compression);
        List<String> problems = consumeAndCheck(bootstrap, topic, sent);
        for (String p : problems.subList(0, Math.min(20, problems.size()))) {
            System.err.println("MISMATCH " + p);
        }
        System.out.println((problems.isEmpty() ? "OK " : "FAILED ") + count + " records, "
                + problems.size() + " problems");
        System.exit(problems.isEmpty() ? 0 : 1);
    }

    static byte[] key(int i) {
        return String.format("jkey-%06d", i).getBytes(StandardCharsets.UTF_8);
    }

    static byte[] value(int i) {
        return ("java value " + i + " ").repeat(1 + i % 5).getBytes(StandardCharsets.UTF_8);
    }

    static void createTopic(String bootstrap, String topic, int partitions) throws Exception {
        Properties props = new Properties();
        props.putAll(BASE);
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                    .all().get(30, TimeUnit.SECONDS);
        }
    }

    static RecordMetadata[] produce(String bootstrap, String topic, int count, String compression)
            throws Exception {
        Properties props = new Properties();
        props.putAll(BASE);
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(
                props, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> futures = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(
                        topic, null, BASE_TS_MS + i, key(i), value(i));
                rec.headers().add("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                futures.add(producer.send(rec));
            }
            producer.flush();
            RecordMetadata[] sent = new RecordMetadata[count];
            for (int i = 0; i < count; i++) {
                sent[i] = futures.get(i).get(30, TimeUnit.SECONDS);
            }
            return sent;
        }
    }

    static List<String> consumeAndCheck(String bootstrap, String topic, RecordMetadata[] sent) {
        Map<Integer, Integer> expectedPerPartition = new HashMap<>();
        Map<TopicPartition, Integer> indexAt = new HashMap<>();
        Map<String, Integer> byOffset = new HashMap<>();
        for (int i = 0; i < sent.length; i++) {
            expectedPerPartition.merge(sent[i].partition(), 1, Integer::sum);
            byOffset.put(sent[i].partition() + "@" + sent[i].offset(), i);
        }
        Properties props = new Properties();
        props.putAll(BASE);
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        List<String> problems = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                tps.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            Map<Integer, Integer> seen = new HashMap<>();
            Map<Integer, Integer> lastIndex = new HashMap<>();
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            int total = 0;
            while (total < sent.length && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    total++;
                    seen.merge(r.partition(), 1, Integer::sum);
                    Integer i = byOffset.get(r.partition() + "@" + r.offset());
                    if (i == null) {
                        problems.add("unexpected record at " + r.partition() + "@" + r.offset());
                        continue;
                    }
                    Integer last = lastIndex.put(r.partition(), i);
                    if (last != null && last >= i) {
                        problems.add("order: " + i + " after " + last + " in " + r.partition());
                    }
                    check(problems, i, r);
                }
            }
            if (!seen.equals(expectedPerPartition)) {
                problems.add("counts per partition " + seen + " != " + expectedPerPartition);
            }
        }
        return problems;
    }

    static void check(List<String> problems, int i, ConsumerRecord<byte[], byte[]> r) {
        if (!java.util.Arrays.equals(r.key(), key(i))) {
            problems.add("key of " + i);
        }
        if (!java.util.Arrays.equals(r.value(), value(i))) {
            problems.add("value of " + i);
        }
        if (r.timestamp() != BASE_TS_MS + i) {
            problems.add("timestamp of " + i + ": " + r.timestamp());
        }
        Header[] hs = r.headers().toArray();
        if (hs.length != 1 || !hs[0].key().equals("seq")
                || !new String(hs[0].value(), StandardCharsets.UTF_8).equals(Integer.toString(i))) {
            problems.add("headers of " + i);
        }
    }
}
