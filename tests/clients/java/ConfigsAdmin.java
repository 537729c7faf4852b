// Topic configs through the Java AdminClient: create with a config, change with
// incrementalAlterConfigs (SET, APPEND, DELETE) and the legacy alterConfigs, refuse a bad value,
// and print what describeConfigs reports after each step as "step name=value source" lines.
// Usage: ConfigsAdmin BOOTSTRAP TOPIC

import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.config.ConfigResource;

public class ConfigsAdmin {
    static final List<String> KEYS =
            List.of("retention.ms", "segment.ms", "cleanup.policy", "retention.bytes");

    static void print(Admin admin, ConfigResource res, String step) throws Exception {
        // KRaft applies changes asynchronously: a short wait keeps the same program usable
        // against Apache Kafka; millrace answers after the change is applied.
        Thread.sleep(step.equals("created") ? 0 : 1500);
        Config config = admin.describeConfigs(List.of(res)).all().get().get(res);
        for (String key : KEYS) {
            ConfigEntry e = config.get(key);
            System.out.println(step + " " + key + "=" + e.value() + " " + e.source());
        }
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        String topic = args[1];
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Admin.create(props)) {
            NewTopic nt = new NewTopic(topic, 1, (short) 1)
                    .configs(Map.of("retention.ms", "3600000"));
            admin.createTopics(List.of(nt)).all().get();
            print(admin, res, "created");

            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("segment.ms", "120000"),
                            AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"),
                            AlterConfigOp.OpType.APPEND)))).all().get();
            print(admin, res, "incremental");

            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("segment.ms", ""),
                            AlterConfigOp.OpType.DELETE)))).all().get();
            print(admin, res, "deleted");

            try {
                admin.incrementalAlterConfigs(Map.of(res, List.of(
                        new AlterConfigOp(new ConfigEntry("retention.ms", "-7"),
                                AlterConfigOp.OpType.SET)))).all().get();
                System.out.println("refused NOT");
            } catch (ExecutionException e) {
                System.out.println("refused " + e.getCause().getClass().getSimpleName());
            }
            print(admin, res, "after-refusal");
        }
    }
}
