// Kafka's Admin transaction APIs against a broker (what kafka-transactions.sh runs):
// a transactional producer leaves a transaction open on <topic>-0; then listTransactions,
// describeTransactions, describeProducers show it, abortTransaction (WriteTxnMarkers from the
// Admin client, the "hanging transaction" cure) aborts it on the partition, and the
// read_committed end offset moves past it. Prints one "key value" line per observation; the
// Python test asserts on them.

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnAdmin {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], txnId = args[2];
        TopicPartition tp = new TopicPartition(topic, 0);
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp);
             Admin admin = Admin.create(ap)) {
            producer.initTransactions();
            producer.beginTransaction();
            RecordMetadata sent = producer.send(new ProducerRecord<>(topic, 0, "k", "open")).get(30, TimeUnit.SECONDS);
            producer.flush();
            System.out.println("sent_offset " + sent.offset());

            Collection<TransactionListing> listed = admin.listTransactions().all().get(30, TimeUnit.SECONDS);
            for (TransactionListing l : listed) {
                if (l.transactionalId().equals(txnId)) {
                    System.out.println("listed " + l.state() + " " + l.producerId());
                }
            }
            TransactionDescription d = admin.describeTransactions(List.of(txnId))
                .description(txnId).get(30, TimeUnit.SECONDS);
            System.out.println("described " + d.state() + " " + d.producerId() + " " + d.producerEpoch()
                + " " + d.transactionTimeoutMs() + " " + d.topicPartitions().contains(tp)
                + " " + d.transactionStartTimeMs().isPresent());

            List<ProducerState> producers = admin.describeProducers(List.of(tp))
                .partitionResult(tp).get(30, TimeUnit.SECONDS).activeProducers();
            ProducerState open = null;
            for (ProducerState s : producers) {
                if (s.currentTransactionStartOffset().isPresent()) {
                    open = s;
                }
            }
            if (open == null) {
                System.out.println("no_open_producer " + producers);
                System.exit(2);
            }
            System.out.println("producer " + open.producerId() + " " + open.producerEpoch()
                + " " + open.currentTransactionStartOffset().getAsLong());

            Map<TopicPartition, OffsetSpec> latest = Map.of(tp, OffsetSpec.latest());
            ListOffsetsOptions committed = new ListOffsetsOptions(IsolationLevel.READ_COMMITTED);
            long before = admin.listOffsets(latest, committed).partitionResult(tp).get(30, TimeUnit.SECONDS).offset();
            System.out.println("lso_before " + before);

            int coordinatorEpoch = Math.max(0, open.coordinatorEpoch().orElse(0));
            admin.abortTransaction(new AbortTransactionSpec(tp, open.producerId(),
                (short) open.producerEpoch(), coordinatorEpoch)).all().get(30, TimeUnit.SECONDS);
            long after = admin.listOffsets(latest, committed).partitionResult(tp).get(30, TimeUnit.SECONDS).offset();
            System.out.println("lso_after " + after);
            producer.close(java.time.Duration.ZERO);
        }
    }
}
